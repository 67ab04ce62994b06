"""Work orders: creation, the event log, and the time-limit presets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api import workorders as svc
from api.deps import ActorDep, BotOrStaffDep, NowDep, SessionDep
from api.domain.replies import ReplyFacts, hotline_report, xinfang_reply
from api.domain.sla import deadlines, get_preset, load_presets
from kb import gaps
from kb.errors import Conflict, InvalidInput, PermissionDenied
from kb.models import WorkOrder

router = APIRouter(prefix="/api/v1/workorders", tags=["work orders"])


@router.get("/presets")
def list_presets() -> list[dict[str, Any]]:
    return [{"id": p.id, "title": p.title, "source": p.source, "document": p.document}
            for p in load_presets().values()]


@router.get("/presets/{preset_id}/deadlines")
def preview_deadlines(preset_id: str, s: SessionDep, now: NowDep, received_at: datetime | None = None,
                      ticket_type: str | None = None) -> dict[str, Any]:
    """What an order received at `received_at` (default: now) would be due, with the rule each rests on."""
    preset = get_preset(preset_id)
    at = received_at or now
    if at.tzinfo is None:
        raise InvalidInput("received_at 须带时区，例如 2026-09-30T10:00:00+08:00", field="received_at")
    due = deadlines(preset, at, gaps.load_calendar(s), ticket_type)
    return {"preset": preset.id, "received_at": at.isoformat(), "ticket_type": ticket_type,
            "deadlines": {k: d.public() for k, d in due.items()}}


class ContactIn(BaseModel):
    name: str = Field("", max_length=50)
    phone: str = Field("", max_length=30)


class WorkOrderIn(BaseModel):
    channel: str
    category: str
    content: str = Field(max_length=5000)
    address: str = Field("", max_length=500)
    contact: ContactIn = Field(default_factory=ContactIn)
    tags: list[str] = Field(default_factory=list)
    unit: str | None = Field(None, max_length=100)
    preset: str | None = None
    received_at: datetime | None = None


class EventIn(BaseModel):
    kind: str = Field(min_length=1, max_length=20)
    data: dict[str, Any] = Field(default_factory=dict)


@router.post("", status_code=201)
def create_order(body: WorkOrderIn, s: SessionDep, now: NowDep, actor: ActorDep, response: Response,
                 idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> dict[str, Any]:
    """With an `Idempotency-Key` header, a retry (the client timed out, the citizen confirmed twice) returns
    the order the first request made, with 200 instead of 201."""
    if (existing := svc.order_for_key(s, actor, idempotency_key)) is not None:
        response.status_code = 200
        return svc.public(existing, actor)
    try:
        order = svc.create_order(s, actor, body.model_dump(), now, gaps.load_calendar(s), key=idempotency_key)
    except IntegrityError as e:  # the same key, at the same moment, from a second request
        if idempotency_key:
            raise Conflict("同一请求正在处理，请稍后用同一 Idempotency-Key 重试") from e
        raise
    return svc.public(order, actor)


@router.get("")
def list_orders(s: SessionDep, actor: ActorDep, status: str | None = None, unit: str | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
    if actor.role == "unit":
        unit = actor.unit
    q = select(WorkOrder)
    if status:
        q = q.where(WorkOrder.status == status)
    if unit:
        q = q.where(WorkOrder.unit == unit)
    return [svc.public(o, actor) for o in s.scalars(q.order_by(WorkOrder.id.desc()).limit(min(max(limit, 1), 500)))]


class SuperviseIn(BaseModel):
    reason: str = Field(pattern="^(leader|media|other|overdue|unsatisfied|repeat)$")
    note: str = Field("", max_length=1000)
    working_days: int | None = Field(None, ge=1, le=90)


@router.post("/supervision/sweep")
def sweep(s: SessionDep, now: NowDep, actor: ActorDep) -> dict[str, Any]:
    """督办 for every open order past its handling deadline (run by the office, or on a schedule)."""
    if actor.role != "admin":
        raise PermissionDenied("只有热线办管理员可以批量督办")
    return {"supervised": svc.sweep_overdue(s, now, gaps.load_calendar(s))}


@router.post("/{number}/supervise")
def supervise(number: str, body: SuperviseIn, s: SessionDep, now: NowDep, actor: ActorDep) -> dict[str, Any]:
    order = svc.supervise(s, actor, number, body.reason, body.note, body.working_days, now, gaps.load_calendar(s))
    return svc.public(order, actor)


class ProgressIn(BaseModel):
    phone_last4: str = Field(min_length=1, max_length=10)


@router.post("/{number}/progress")
def progress(number: str, body: ProgressIn, s: SessionDep, actor: BotOrStaffDep) -> dict[str, Any]:
    """A citizen's own progress query (via the bot), proven by the last four digits of the phone on the order."""
    return svc.progress(s, number, body.phone_last4.strip())


@router.get("/{number}")
def get_order(number: str, s: SessionDep, actor: ActorDep) -> dict[str, Any]:
    order = svc.get_order(s, number, actor)
    return svc.public(order, actor, svc.events_of(s, order))


@router.post("/{number}/events")
def add_event(number: str, body: EventIn, s: SessionDep, now: NowDep, actor: ActorDep) -> dict[str, Any]:
    order, _ = svc.add_event(s, actor, number, body.kind, body.data, now, gaps.load_calendar(s))
    return svc.public(order, actor, svc.events_of(s, order))


class ReplyIn(BaseModel):
    template: str = Field("hotline", pattern="^(hotline|xinfang)$")
    findings: str = Field("", max_length=2000)
    policy: str = Field("", max_length=1000)
    measures: list[str] = Field(default_factory=list)
    accepted: bool | None = None
    requests: str = Field("", max_length=1000)
    reasons: str = Field("", max_length=1000)
    superior: str = Field("", max_length=100)


@router.post("/{number}/reply-draft")
def reply_draft(number: str, body: ReplyIn, s: SessionDep, now: NowDep, actor: ActorDep) -> dict[str, Any]:
    """A reply filled from the order's facts (seed 004 附件2/附件3); unknown facts stay as [prompts]."""
    order = svc.get_order(s, number, actor)
    log = svc.events_of(s, order)
    contacted = next((e.at for e in log if e.kind == "先行联系"), None)
    result = svc.latest_result(log)
    facts = ReplyFacts(caller=order.contact_name, content=order.content, category=order.category,
                       unit=order.unit or "[承办单位]", contacted_at=contacted, result=result, today=now.date(),
                       **body.model_dump(exclude={"template"}))
    text = hotline_report(facts) if body.template == "hotline" else xinfang_reply(facts)
    return {"number": order.number, "template": body.template, "text": text}
