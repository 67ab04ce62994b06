"""Knowledge-base maintenance: entries and versions, review flow, history, diffs, synonyms, import/export."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Response, UploadFile
from sqlalchemy import select

from api.deps import ActorDep, AdminDep, NowDep, SessionDep
from api.schemas import (
    EntryCreate,
    EntryList,
    EntryPublic,
    EventPublic,
    NoteIn,
    RollbackIn,
    SynonymIn,
    SynonymPublic,
    VersionPublic,
)
from kb import entries as kbe
from kb import exchange
from kb.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from kb.models import Synonym

router = APIRouter(prefix="/api/v1/kb", tags=["knowledge base"])
MAX_IMPORT_BYTES = 20 * 1024 * 1024


def _version(v: kbe.EntryVersion) -> VersionPublic:
    return VersionPublic(**kbe.version_dict(v))


def _entry(s: SessionDep, entry_id: str) -> EntryPublic:
    entry = kbe.get_entry(s, entry_id)
    vs = kbe.versions(s, entry_id)
    current = next((v for v in vs if v.version == entry.published_version), vs[-1])
    return EntryPublic(id=entry.id, unit=entry.unit, published_version=entry.published_version,
                       latest_version=entry.latest_version, current=_version(current),
                       versions=[_version(v) for v in vs])


@router.get("/entries", response_model=EntryList)
def list_entries(
    s: SessionDep,
    category: str | None = None,
    unit: str | None = None,
    status: Annotated[str | None, Query(pattern="^(draft|in_review|published|superseded|retired)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EntryList:
    total, rows = kbe.list_entries(s, category=category, unit=unit, status=status, limit=limit, offset=offset)
    return EntryList(total=total, items=[_version(v) for v in rows])


@router.post("/entries", response_model=EntryPublic, status_code=201)
def create_entry(body: EntryCreate, s: SessionDep, actor: ActorDep, now: NowDep) -> EntryPublic:
    data = kbe.EntryData(**body.model_dump(exclude={"id"}))
    v = kbe.create_entry(s, actor, data, now, entry_id=body.id)
    return _entry(s, v.entry_id)


@router.get("/entries/{entry_id}", response_model=EntryPublic)
def get_entry(entry_id: str, s: SessionDep) -> EntryPublic:
    return _entry(s, entry_id)


@router.post("/entries/{entry_id}/versions", response_model=VersionPublic, status_code=201)
def new_version(entry_id: str, body: kbe.EntryData, s: SessionDep, actor: ActorDep, now: NowDep,
                note: str = "") -> VersionPublic:
    return _version(kbe.add_version(s, actor, entry_id, body, now, note=note))


@router.get("/entries/{entry_id}/versions/{version}", response_model=VersionPublic)
def get_version(entry_id: str, version: int, s: SessionDep) -> VersionPublic:
    return _version(kbe.get_version(s, entry_id, version))


@router.post("/entries/{entry_id}/versions/{version}/submit", response_model=VersionPublic)
def submit(entry_id: str, version: int, s: SessionDep, actor: ActorDep, now: NowDep) -> VersionPublic:
    return _version(kbe.submit(s, actor, entry_id, version, now))


@router.post("/entries/{entry_id}/versions/{version}/send-back", response_model=VersionPublic)
def send_back(entry_id: str, version: int, body: NoteIn, s: SessionDep, actor: ActorDep, now: NowDep
              ) -> VersionPublic:
    return _version(kbe.send_back(s, actor, entry_id, version, now, body.note))


@router.post("/entries/{entry_id}/versions/{version}/publish", response_model=VersionPublic)
def publish(entry_id: str, version: int, s: SessionDep, actor: ActorDep, now: NowDep) -> VersionPublic:
    return _version(kbe.publish(s, actor, entry_id, version, now))


@router.post("/entries/{entry_id}/retire", response_model=VersionPublic)
def retire(entry_id: str, body: NoteIn, s: SessionDep, actor: ActorDep, now: NowDep) -> VersionPublic:
    return _version(kbe.retire(s, actor, entry_id, now, body.note))


@router.post("/entries/{entry_id}/rollback", response_model=VersionPublic)
def rollback(entry_id: str, body: RollbackIn, s: SessionDep, actor: ActorDep, now: NowDep) -> VersionPublic:
    return _version(kbe.rollback(s, actor, entry_id, body.version, now))


@router.get("/entries/{entry_id}/history", response_model=list[EventPublic])
def history(entry_id: str, s: SessionDep) -> list[EventPublic]:
    return [EventPublic(version=e.version, action=e.action, actor=e.actor, at=e.at, detail=e.detail)
            for e in kbe.history(s, entry_id)]


@router.get("/entries/{entry_id}/diff")
def diff(entry_id: str, s: SessionDep, a: Annotated[int, Query(alias="from", ge=1)],
         b: Annotated[int, Query(alias="to", ge=1)]) -> dict[str, Any]:
    return {"entry_id": entry_id, "from": a, "to": b, "changes": kbe.diff(s, entry_id, a, b)}


# -- synonyms ---------------------------------------------------------------------------------------------

def _synonym(r: Synonym) -> SynonymPublic:
    return SynonymPublic(id=r.id, term=r.term, canonical=r.canonical, created_by=r.created_by, created_at=r.created_at)


@router.get("/synonyms", response_model=list[SynonymPublic])
def list_synonyms(s: SessionDep) -> list[SynonymPublic]:
    return [_synonym(r) for r in s.scalars(select(Synonym).order_by(Synonym.term))]


@router.post("/synonyms", response_model=SynonymPublic, status_code=201)
def add_synonym(body: SynonymIn, s: SessionDep, actor: ActorDep, now: NowDep) -> SynonymPublic:
    if not actor.is_office:
        raise PermissionDenied("同义词表由热线办管理员或审核人维护")
    term, canonical = body.term.strip(), body.canonical.strip()
    if term == canonical:
        raise InvalidInput("同义词与标准词相同，无需登记", field="term")
    if s.scalar(select(Synonym).where(Synonym.term == term)):
        raise Conflict(f"“{term}”已在同义词表中")
    if s.scalar(select(Synonym).where(Synonym.term == canonical)):
        raise InvalidInput(f"标准词“{canonical}”本身是另一个词的同义词；请直接写它的标准词", field="canonical")
    row = Synonym(term=term, canonical=canonical, created_by=actor.name, created_at=now)
    s.add(row)
    s.flush()
    kbe.bump_kb_version(s, now)
    return _synonym(row)


@router.delete("/synonyms/{synonym_id}", status_code=204)
def delete_synonym(synonym_id: int, s: SessionDep, actor: ActorDep, now: NowDep) -> Response:
    if not actor.is_office:
        raise PermissionDenied("同义词表由热线办管理员或审核人维护")
    row = s.get(Synonym, synonym_id)
    if row is None:
        raise NotFound(f"同义词 {synonym_id} 不存在")
    s.delete(row)
    kbe.bump_kb_version(s, now)
    return Response(status_code=204)


# -- import / export --------------------------------------------------------------------------------------

@router.post("/import")
async def import_file(s: SessionDep, actor: AdminDep, now: NowDep, file: Annotated[UploadFile, File()],
                      publish: bool = False,
                      format: Annotated[str | None, Query(pattern="^(jsonl|csv|xlsx)$")] = None) -> dict[str, Any]:
    content = await file.read(MAX_IMPORT_BYTES + 1)
    if len(content) > MAX_IMPORT_BYTES:
        raise InvalidInput("文件超过 20 MB")
    rows = exchange.parse(content, file.filename or "", format)
    result = exchange.import_rows(s, actor, rows, now, publish)
    return result | {"file": file.filename}


@router.get("/export")
def export_file(s: SessionDep, format: Annotated[str, Query(pattern="^(jsonl|csv|xlsx)$")] = "jsonl",
                status: Annotated[str, Query(pattern="^(published|latest)$")] = "published") -> Response:
    if status == "published":
        rows = kbe.searchable_versions(s)
    else:
        _, rows = kbe.list_entries(s, limit=10**9)
    media = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}[format]
    return Response(exchange.dump(exchange.export_rows(rows), format), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="kb.{format}"'})
