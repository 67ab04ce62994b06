"""Work-order service: creation with unique numbers, events appended through the domain state machine,
role scoping and PII masking. Routers call these; the rules live in api/domain/."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from api.domain.intake import load_units
from api.domain.sla import deadlines, due, get_preset
from api.domain.supervision import REPEAT_WINDOW, Earlier, find_repeat, supervision_entry
from api.domain.workorder import Event, State, apply, replay
from kb.entries import Actor
from kb.errors import InvalidInput, NotFound, PermissionDenied
from kb.models import WorkOrder, WorkOrderCounter, WorkOrderEvent
from kb.text import TextProcessor
from kb.workdays import TZ, WorkCalendar

CATEGORIES = ("咨询", "求助", "投诉", "举报", "建议")
CHANNELS = ("phone", "web", "wechat", "bot", "operator", "962200", "letter")
TAGS = ("普通", "标签", "复核", "咨询", "扬言", "随申拍", "紧急", "次紧急")
PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")
OFFICE_EVENTS = {"受理", "派单", "延期审批", "审核", "回访", "结案", "不满退回"}
UNIT_EVENTS = {"签收", "退单", "先行联系", "延期申请", "办结回复"}
DEFAULT_PRESET = "baoshan-jianguanwei"


@lru_cache(maxsize=1)
def processor() -> TextProcessor:
    return TextProcessor()


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


def mask_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1) if name else ""


def next_number(s: Session, now: datetime) -> str:
    """GD + date + a per-day counter taken with one atomic upsert, so concurrent creates never collide."""
    day = now.astimezone(TZ).strftime("%Y%m%d")
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(WorkOrderCounter).values(day=day, last=1)
    stmt = stmt.on_conflict_do_update(index_elements=["day"], set_={"last": WorkOrderCounter.last + 1})
    last = s.execute(stmt.returning(WorkOrderCounter.last)).scalar_one()
    return f"GD{day}{last:06d}"


def _ticket_type(tags: list[str], preset_id: str) -> str:
    handling = get_preset(preset_id).handling
    for t in ("紧急", "次紧急", "扬言", "随申拍", "复核", "标签", "咨询", "普通"):
        if t in tags and t in handling:
            return t
    return "default"


def check_unit(name: str) -> None:
    """Orders go to units of the directory only: a typo would send an order nowhere and no one would see it."""
    if name and name not in {u.name for u in load_units()}:
        raise InvalidInput(f"未知承办单位“{name}”：请使用单位目录中的名称（GET /api/v1/intake/units）", field="unit")


def client_key(actor: Actor, key: str | None) -> str | None:
    return f"{actor.name}|{key}" if key else None


def order_for_key(s: Session, actor: Actor, key: str | None) -> WorkOrder | None:
    """The order this actor already created with this Idempotency-Key, if any."""
    scoped = client_key(actor, key)
    return s.scalar(select(WorkOrder).where(WorkOrder.client_key == scoped)) if scoped else None


def create_order(s: Session, actor: Actor, body: dict[str, Any], now: datetime, cal: WorkCalendar,
                 key: str | None = None) -> WorkOrder:
    if actor.role not in ("admin", "operator", "reviewer", "bot"):
        raise PermissionDenied("只有热线办、话务员或对话机器人可以登记工单")
    if actor.role == "bot" and (body.get("unit") or body.get("received_at") is not None):
        # Citizens' orders are registered (受理) only; dispatch and back-filling stay with the office.
        raise PermissionDenied("对话机器人登记的工单不能指定承办单位或受理时间")
    content = str(body.get("content") or "").strip()
    if not content:
        raise InvalidInput("诉求内容不能为空", field="content")
    category = body.get("category")
    if category not in CATEGORIES:
        raise InvalidInput(f"category 须为：{'、'.join(CATEGORIES)}", field="category")
    channel = body.get("channel")
    if channel not in CHANNELS:
        raise InvalidInput(f"channel 须为：{', '.join(CHANNELS)}", field="channel")
    contact = body.get("contact") or {}
    phone = re.sub(r"[\s-]", "", str(contact.get("phone") or "")) if contact.get("phone") else ""
    if phone and not PHONE.match(phone):
        raise InvalidInput("联系电话格式不对：手机号为 11 位数字（如 13812345678），座机如 021-12345678", field="phone")
    tags = list(dict.fromkeys(body.get("tags") or ["普通"]))
    bad = [t for t in tags if t not in TAGS]
    if bad:
        raise InvalidInput(f"未知标签 {bad[0]}；可用：{'、'.join(TAGS)}", field="tags")
    preset_id = body.get("preset") or DEFAULT_PRESET
    preset = get_preset(preset_id)
    received_at = body.get("received_at")
    if received_at is not None:
        if actor.role != "admin":
            raise PermissionDenied("只有热线办管理员可以补录受理时间（received_at）")
        if received_at.tzinfo is None:
            raise InvalidInput("received_at 须带时区", field="received_at")
        if received_at > now:
            raise InvalidInput("received_at 不能晚于现在", field="received_at")
    received = received_at or now
    ticket_type = _ticket_type(tags, preset_id)
    due = deadlines(preset, received, cal, ticket_type)
    words = " ".join(processor().words(content))
    since = received - REPEAT_WINDOW
    address = str(body.get("address") or "").strip()
    same = [c for c in (WorkOrder.contact_phone == phone if phone else None,
                        WorkOrder.address == address if address else None) if c is not None]
    candidates = s.scalars(select(WorkOrder).where(WorkOrder.received_at >= since, or_(*same))) if same else []
    earlier = [Earlier(o.number, o.repeat_of or o.number, o.received_at, o.contact_phone, o.address,
                       " ".join(processor().words(o.content))) for o in candidates]
    repeat = find_repeat(phone, address, words, received, earlier)
    order = WorkOrder(
        number=next_number(s, now), channel=channel, category=category, content=content[:5000],
        address=str(body.get("address") or "")[:500], contact_name=str(contact.get("name") or "")[:50],
        contact_phone=phone, tags=tags, preset_id=preset_id, ticket_type=ticket_type, received_at=received,
        created_by=actor.name, status="受理", unit=None, deadlines={k: d.public() for k, d in due.items()},
        repeat_of=repeat.root if repeat else None, supervision=[], client_key=client_key(actor, key),
    )
    s.add(order)
    s.flush()
    if repeat is not None:
        chain = list(s.scalars(select(WorkOrder).where(
            (WorkOrder.number == repeat.root) | (WorkOrder.repeat_of == repeat.root))))
        order.repeat_count = len(chain)
        threshold = preset.repeat_supervision_at or 3
        if order.repeat_count >= threshold:
            order.supervision = [supervision_entry("repeat", now, "系统", cal,
                                                   note=f"同一事项第 {order.repeat_count} 次反映，首单 {repeat.root}")]
    events = [Event("受理", received, actor.name, {})]
    unit = str(body.get("unit") or "").strip()
    check_unit(unit)
    if unit:
        events.append(Event("派单", received, actor.name, {"unit": unit}))
    state = State()
    for i, e in enumerate(events, start=1):
        state = apply(state, e, preset, cal)
        s.add(WorkOrderEvent(order_id=order.id, seq=i, kind=e.kind, at=e.at, actor=e.actor, data=e.data))
    order.status, order.unit = state.status or "受理", state.unit
    s.flush()
    return order


def get_order(s: Session, number: str, actor: Actor) -> WorkOrder:
    order = s.scalar(select(WorkOrder).where(WorkOrder.number == number))
    if order is None:
        raise NotFound(f"工单 {number} 不存在")
    if actor.role == "unit" and order.unit != actor.unit:
        raise PermissionDenied("承办单位只能查看本单位的工单")
    return order


def events_of(s: Session, order: WorkOrder) -> list[WorkOrderEvent]:
    return list(s.scalars(select(WorkOrderEvent).where(WorkOrderEvent.order_id == order.id)
                          .order_by(WorkOrderEvent.seq)))


def add_event(s: Session, actor: Actor, number: str, kind: str, data: dict[str, Any], now: datetime,
              cal: WorkCalendar) -> tuple[WorkOrder, State]:
    order = get_order(s, number, actor)
    if kind == "派单":
        check_unit(str(data.get("unit") or "").strip())
    if kind in UNIT_EVENTS:
        if not (actor.role == "admin" or (actor.role == "unit" and actor.unit == order.unit)):
            raise PermissionDenied(f"“{kind}”须由承办单位“{order.unit}”操作")
    elif kind in OFFICE_EVENTS and actor.role not in ("admin", "reviewer", "operator"):
        raise PermissionDenied(f"“{kind}”须由热线办操作")
    preset = get_preset(order.preset_id)
    log = events_of(s, order)
    state = replay([Event(e.kind, e.at, e.actor, e.data) for e in log], preset, cal)
    state = apply(state, Event(kind, now, actor.name, data), preset, cal)
    s.add(WorkOrderEvent(order_id=order.id, seq=len(log) + 1, kind=kind, at=now, actor=actor.name, data=data))
    order.status, order.unit = state.status or order.status, state.unit
    if kind == "回访" and data.get("satisfaction") == "不满意":
        order.supervision = [*order.supervision, supervision_entry("unsatisfied", now, actor.name, cal)]
    if kind == "不满退回":
        recheck = preset.limits.get("callback_recheck")
        if recheck is not None:
            order.deadlines = {**order.deadlines, "callback_recheck": due(recheck, now, cal).public()}
    s.flush()
    return order, state


def public(order: WorkOrder, actor: Actor, events: list[WorkOrderEvent] | None = None) -> dict[str, Any]:
    """The order as this actor may see it: the office and the handling unit see contact details in full."""
    full = actor.role == "admin" or (actor.role == "unit" and actor.unit == order.unit)
    out: dict[str, Any] = {
        "number": order.number, "status": order.status, "unit": order.unit, "channel": order.channel,
        "category": order.category, "content": order.content, "address": order.address, "tags": order.tags,
        "preset": order.preset_id, "ticket_type": order.ticket_type, "received_at": order.received_at.isoformat(),
        "deadlines": {k: v["at"] for k, v in order.deadlines.items()},
        "deadline_details": order.deadlines,
        "repeat_of": order.repeat_of, "repeat_count": order.repeat_count,
        "supervised": bool(order.supervision), "supervision": order.supervision,
        "contact": {"name": order.contact_name if full else mask_name(order.contact_name),
                    "phone": order.contact_phone if full else mask_phone(order.contact_phone)
                    if order.contact_phone else ""},
    }
    if events is not None:
        out["events"] = [{"seq": e.seq, "kind": e.kind, "at": e.at.isoformat(), "actor": e.actor, "data": e.data}
                         for e in events]
    return out


def supervise(s: Session, actor: Actor, number: str, reason: str, note: str, working_days: int | None,
              now: datetime, cal: WorkCalendar) -> WorkOrder:
    if actor.role not in ("admin", "reviewer"):
        raise PermissionDenied("督办由热线办发起")
    if reason not in ("leader", "media", "other", "overdue", "unsatisfied", "repeat"):
        raise InvalidInput("reason 须为 leader / media / other / overdue / unsatisfied / repeat", field="reason")
    if working_days is not None and not 1 <= working_days <= 90:
        raise InvalidInput("督办期限须为 1 到 90 个工作日", field="working_days")
    order = get_order(s, number, actor)
    if order.status == "结案":
        raise InvalidInput(f"工单 {number} 已结案，无需督办")
    order.supervision = [*order.supervision, supervision_entry(reason, now, actor.name, cal, note, working_days)]
    s.flush()
    return order


def sweep_overdue(s: Session, now: datetime, cal: WorkCalendar) -> list[str]:
    """Raises 督办 on every open order past its handling deadline that is not supervised for it yet."""
    flagged = []
    for order in s.scalars(select(WorkOrder).where(WorkOrder.status.not_in(("结案", "办结回复", "审核通过", "回访")))):
        handling = order.deadlines.get("handling", {}).get("at")
        if handling and datetime.fromisoformat(handling) < now and not any(
                x.get("reason") == "overdue" for x in order.supervision):
            order.supervision = [*order.supervision, supervision_entry("overdue", now, "系统", cal)]
            flagged.append(order.number)
    s.flush()
    return flagged


def latest_result(log: list[WorkOrderEvent]) -> str | None:
    """The result (实际解决/解释说明/…) of the latest 办结回复: after 不满退回 the order is answered again."""
    return next((e.data.get("result") for e in reversed(log) if e.kind == "办结回复"), None)


def progress(s: Session, number: str, phone_last4: str) -> dict[str, Any]:
    """What a citizen may learn about their own order, once they prove it with the phone's last four digits.

    A wrong number and a wrong tail get the same answer, so the endpoint cannot be used to probe for numbers."""
    if not re.fullmatch(r"\d{4}", phone_last4 or ""):
        raise InvalidInput("请提供登记电话的后四位数字", field="phone_last4")
    order = s.scalar(select(WorkOrder).where(WorkOrder.number == number.strip().upper()))
    if order is None or not order.contact_phone or not order.contact_phone.endswith(phone_last4):
        raise NotFound("工单号与电话后四位不匹配，请核对后再试")
    log = events_of(s, order)
    result = latest_result(log)
    return {
        "number": order.number, "status": order.status, "unit": order.unit, "category": order.category,
        "received_at": order.received_at.isoformat(), "deadlines": {k: v["at"] for k, v in order.deadlines.items()},
        "last_event": {"kind": log[-1].kind, "at": log[-1].at.isoformat()} if log else None,
        "result": result, "supervised": bool(order.supervision),
    }
