"""查无 / 纠错 items, policy notices with their update tasks, and the office's holiday calendar."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from sqlalchemy import select

from api.deps import ActorDep, AdminDep, NowDep, OptionalActor, SearchDep, SessionDep
from api.schemas import (
    CalendarYearIn,
    CorrectionIn,
    GapPublic,
    GapResolved,
    MissingIn,
    NoteIn,
    NoticeIn,
    NoticePublic,
    ResolveIn,
    TaskPublic,
    TaskResolveIn,
)
from kb import gaps
from kb.errors import InvalidInput, PermissionDenied
from kb.models import CalendarYear, Gap, PolicyNotice, UpdateTask
from kb.workdays import PACKAGE_YEARS, CalendarDataError, CalendarDay, parse_calendar_file

router = APIRouter(tags=["gaps and notices"])


def _gap(g: Gap, today: date) -> GapPublic:
    return GapPublic(
        id=g.id, kind=g.kind, status=g.status, question=g.question, entry_id=g.entry_id,
        entry_version=g.entry_version, comment=g.comment, unit=g.unit, channel=g.channel, count=g.count,
        created_at=g.created_at, last_seen_at=g.last_seen_at, due_date=g.due_date,
        due_provisional=g.due_provisional, overdue=gaps.is_overdue(g, today), resolved_at=g.resolved_at,
        resolved_entry_id=g.resolved_entry_id, resolved_version=g.resolved_version,
        resolution_note=g.resolution_note, recurs_gap_id=g.recurs_gap_id,
    )


def _task(t: UpdateTask, today: date) -> TaskPublic:
    return TaskPublic(id=t.id, notice_id=t.notice_id, entry_id=t.entry_id, unit=t.unit, score=t.score,
                      due_date=t.due_date, status=t.status,
                      overdue=(t.resolved_at.date() if t.resolved_at else today) > t.due_date,
                      resolved_version=t.resolved_version)


@router.get("/api/v1/kb/gaps", response_model=list[GapPublic])
def list_gaps(
    s: SessionDep, now: NowDep, actor: ActorDep,
    unit: str | None = None,
    kind: Annotated[str | None, Query(pattern="^(missing|correction)$")] = None,
    status: Annotated[str | None, Query(pattern="^(open|resolved|rejected)$")] = None,
    overdue: bool | None = None,
    recurring: Annotated[bool | None, Query(description="只看已解决后又出现的查无事项（答案未被检索到）")] = None,
) -> list[GapPublic]:
    if actor.role == "unit":
        if unit and unit != actor.unit:
            raise PermissionDenied("承办单位只能查看本单位的查无/纠错事项")
        unit = actor.unit
    today = now.date()
    return [_gap(g, today) for g in gaps.list_gaps(s, today, unit=unit, kind=kind, status=status, overdue=overdue,
                                                    recurring=recurring)]


@router.get("/api/v1/kb/gaps/{gap_id}")
def get_gap(gap_id: int, s: SessionDep, now: NowDep, actor: ActorDep) -> dict[str, Any]:
    g = gaps.get_gap(s, gap_id)
    if actor.role == "unit" and g.unit != actor.unit:
        raise PermissionDenied("承办单位只能查看本单位的事项")
    return {"gap": _gap(g, now.date()),
            "reports": [{"text": r.text, "channel": r.channel, "at": r.at} for r in gaps.reports(s, gap_id)]}


@router.post("/api/v1/kb/corrections", response_model=GapPublic, status_code=201)
def file_correction(body: CorrectionIn, s: SessionDep, now: NowDep, actor: OptionalActor) -> GapPublic:
    """Citizens (no token) and operators say an answer is wrong or out of date."""
    reporter = actor.name if actor else f"市民（{body.channel}）"
    channel = "operator" if actor and actor.role == "operator" else body.channel
    g = gaps.file_correction(s, reporter, body.entry_id, body.version, body.comment, channel, now,
                             gaps.load_calendar(s))
    return _gap(g, now.date())


@router.post("/api/v1/kb/missing", response_model=GapPublic, status_code=201)
def record_missing(
    body: MissingIn, s: SessionDep, now: NowDep, actor: OptionalActor, service: SearchDep
) -> GapPublic:
    """Citizens (no token) and operators say none of the suggested entries answers the question: a 查无 item."""
    channel = "operator" if actor and actor.role == "operator" else body.channel
    g = gaps.record_rejected_suggestions(s, service.ready_index().processor, body.question, body.shown, channel,
                                         now, gaps.load_calendar(s))
    return _gap(g, now.date())


@router.post("/api/v1/kb/gaps/{gap_id}/resolve", response_model=GapResolved)
def resolve_gap(gap_id: int, body: ResolveIn, s: SessionDep, now: NowDep, actor: ActorDep) -> GapResolved:
    g = gaps.resolve_gap(s, actor, gap_id, body.entry_id, body.version, now, body.note, body.add_question)
    added = gaps.add_asked_wording(s, actor, g, now) if body.add_question else None
    return GapResolved(**_gap(g, now.date()).model_dump(), question_version=added.version if added else None,
                       question_version_status=added.status if added else None)


@router.post("/api/v1/kb/gaps/{gap_id}/reject", response_model=GapPublic)
def reject_gap(gap_id: int, body: NoteIn, s: SessionDep, now: NowDep, actor: ActorDep) -> GapPublic:
    """热线办驳回：知识库不解答此问题（非受理范围、无效信息）。此后同类提问直接答“查无”，计入本事项，不再开立新事项；
    若知识库其实已能解答，请改用“办结”并关联该版本。"""
    return _gap(gaps.reject_gap(s, actor, gap_id, now, body.note), now.date())


# -- policy notices ---------------------------------------------------------------------------------------

def _notice(n: PolicyNotice, tasks: list[UpdateTask], today: date) -> NoticePublic:
    return NoticePublic(id=n.id, title=n.title, doc_number=n.doc_number, published_on=n.published_on, unit=n.unit,
                        created_by=n.created_by, created_at=n.created_at, tasks=[_task(t, today) for t in tasks])


@router.post("/api/v1/kb/notices", response_model=NoticePublic, status_code=201)
def register_notice(body: NoticeIn, s: SessionDep, now: NowDep, actor: ActorDep, service: SearchDep
                    ) -> NoticePublic:
    affected = service.affected_entries(body.title, body.text, body.unit, now.date())
    n, tasks = gaps.register_notice(s, actor, title=body.title, doc_number=body.doc_number,
                                    published_on=body.published_on, text=body.text, unit=body.unit,
                                    affected=affected, now=now)
    return _notice(n, tasks, now.date())


@router.get("/api/v1/kb/notices", response_model=list[NoticePublic])
def list_notices(s: SessionDep, now: NowDep, actor: ActorDep) -> list[NoticePublic]:
    out = []
    for n in s.scalars(select(PolicyNotice).order_by(PolicyNotice.id.desc())):
        tasks = list(s.scalars(select(UpdateTask).where(UpdateTask.notice_id == n.id).order_by(UpdateTask.id)))
        if actor.role == "unit":
            tasks = [t for t in tasks if t.unit == actor.unit]
        out.append(_notice(n, tasks, now.date()))
    return out


@router.get("/api/v1/kb/tasks", response_model=list[TaskPublic])
def list_tasks(s: SessionDep, now: NowDep, actor: ActorDep, unit: str | None = None,
               status: Annotated[str | None, Query(pattern="^(open|done)$")] = None) -> list[TaskPublic]:
    if actor.role == "unit":
        unit = actor.unit
    q = select(UpdateTask)
    if unit:
        q = q.where(UpdateTask.unit == unit)
    if status:
        q = q.where(UpdateTask.status == status)
    return [_task(t, now.date()) for t in s.scalars(q.order_by(UpdateTask.due_date, UpdateTask.id))]


@router.post("/api/v1/kb/tasks/{task_id}/resolve", response_model=TaskPublic)
def resolve_task(task_id: int, body: TaskResolveIn, s: SessionDep, now: NowDep, actor: ActorDep) -> TaskPublic:
    return _task(gaps.resolve_task(s, actor, task_id, body.version, now), now.date())


# -- calendar ---------------------------------------------------------------------------------------------

@router.get("/api/v1/calendar/years")
def calendar_years(s: SessionDep) -> dict[str, Any]:
    office = {r.year: {"loaded_at": r.loaded_at, "loaded_by": r.loaded_by} for r in s.scalars(select(CalendarYear))}
    return {"package_years": [min(PACKAGE_YEARS), max(PACKAGE_YEARS)], "office_years": office}


@router.post("/api/v1/calendar/years")
def load_calendar_json(body: CalendarYearIn, s: SessionDep, now: NowDep, actor: AdminDep) -> dict[str, Any]:
    wrong = [d.date for d in body.days if d.date.year != body.year]
    if wrong:
        raise InvalidInput(f"日期 {wrong[0]} 不在 {body.year} 年内")
    days = [CalendarDay(d.date, d.type, d.name) for d in body.days]
    return gaps.store_calendar_year(s, {body.year}, days, actor, now)


@router.post("/api/v1/calendar/upload")
async def load_calendar_file(s: SessionDep, now: NowDep, actor: AdminDep, file: Annotated[UploadFile, File()]
                             ) -> dict[str, Any]:
    try:
        years, days = parse_calendar_file(await file.read(1_000_000), file.filename or "")
    except CalendarDataError as e:
        raise InvalidInput(str(e)) from e
    except UnicodeDecodeError as e:
        raise InvalidInput("日历文件须为 UTF-8 编码") from e
    return gaps.store_calendar_year(s, years, days, actor, now)
