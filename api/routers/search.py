"""Search for citizens (records 查无 gaps) and suggestions for operators mid-call (records nothing)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import NowDep, SearchDep, SessionDep, StaffDep
from api.schemas import SearchRequest, SearchResponse, SearchResult
from kb import gaps
from kb.errors import InvalidInput
from kb.search import SearchOutcome
from kb.service import SearchService

router = APIRouter(tags=["search"])
CITIZEN_CHANNELS = {"web", "wechat", "bot"}


def _response(outcome: SearchOutcome, service: SearchService, gap_id: int | None = None) -> SearchResponse:
    return SearchResponse(
        decision=outcome.decision,  # type: ignore[arg-type]
        confidence=outcome.confidence,
        results=[
            SearchResult(entry_id=h.doc.entry_id, version=h.doc.version, question=h.doc.question,
                         matched_question=h.matched_question, answer=h.doc.answer, policy_basis=h.doc.policy_basis,
                         unit=h.doc.unit, category=h.doc.category, score=round(h.score, 4))
            for h in outcome.hits
        ],
        gap_id=gap_id,
        kb_version=service.index.kb_version if service.index else None,
    )


@router.post("/api/v1/kb/search", response_model=SearchResponse)
def search(body: SearchRequest, s: SessionDep, service: SearchDep, now: NowDep) -> SearchResponse:
    outcome = service.search(body.query, top_k=body.top_k, today=now.date())
    gap_id = None
    if outcome.decision == "no_answer" and body.channel in CITIZEN_CHANNELS:
        unit = outcome.hits[0].doc.unit if outcome.hits and outcome.hits[0].score >= 0.1 else None
        gap = gaps.record_missing(s, service.ready_index().processor, body.query, body.channel, unit, now,
                                  gaps.load_calendar(s))
        gap_id = gap.id if gap and gap.status == "open" else None  # a rejected question is not promised an answer
    return _response(outcome, service, gap_id)


@router.get("/api/v1/assist/suggest", response_model=SearchResponse)
def suggest(
    q: Annotated[str, Query(min_length=1, max_length=10000, description="通话中听到的问题")],
    service: SearchDep, now: NowDep, actor: StaffDep,
    top_k: Annotated[int, Query(ge=1, le=10)] = 5,
) -> SearchResponse:
    if not q.strip():
        raise InvalidInput("问题不能为空", field="q")
    return _response(service.search(q, top_k=top_k, today=now.date()), service)
