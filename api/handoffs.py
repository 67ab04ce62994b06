"""Conversations handed from the bot to a human operator, waiting in a queue the operators work through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kb.entries import Actor
from kb.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from kb.models import Handoff

REASONS = ("request", "threat", "stuck", "api_down", "emergency")


def create(s: Session, actor: Actor, body: dict[str, Any], now: datetime) -> Handoff:
    if actor.role not in ("bot", "admin", "operator"):
        raise PermissionDenied("只有对话机器人或话务员可以发起转人工")
    reason = body.get("reason")
    if reason not in REASONS:
        raise InvalidInput(f"reason 须为：{', '.join(REASONS)}", field="reason")
    h = Handoff(sender_id=str(body.get("sender_id") or "")[:128] or "unknown",
                channel=str(body.get("channel") or "")[:20],
                reason=reason, threat=bool(body.get("threat")) or reason == "threat",
                text=str(body.get("text") or "")[:2000],
                transcript=[str(t)[:2000] for t in (body.get("transcript") or [])][-30:],
                status="waiting", created_at=now)
    s.add(h)
    s.flush()
    return h


def take(s: Session, actor: Actor, handoff_id: int, now: datetime) -> Handoff:
    if actor.role not in ("admin", "operator"):
        raise PermissionDenied("只有话务员可以接入会话")
    h = s.get(Handoff, handoff_id)
    if h is None:
        raise NotFound(f"转人工记录 {handoff_id} 不存在")
    if h.status != "waiting":
        raise Conflict(f"该会话已由{h.taken_by}接入")
    h.status, h.taken_by, h.taken_at = "taken", actor.name, now
    s.flush()
    return h


def waiting(s: Session, actor: Actor, threat_only: bool = False, sender_id: str | None = None) -> list[Handoff]:
    if actor.role not in ("admin", "operator"):
        raise PermissionDenied("只有话务员可以查看转人工队列")
    q = select(Handoff).where(Handoff.status == "waiting")
    if threat_only:
        q = q.where(Handoff.threat.is_(True))
    if sender_id is not None:
        q = q.where(Handoff.sender_id == sender_id)
    # threats first: 扬言 cases are answered before anything else
    return list(s.scalars(q.order_by(Handoff.threat.desc(), Handoff.id)))


def public(h: Handoff) -> dict[str, Any]:
    return {"id": h.id, "sender_id": h.sender_id, "channel": h.channel, "reason": h.reason, "threat": h.threat,
            "text": h.text, "transcript": h.transcript, "status": h.status, "created_at": h.created_at.isoformat(),
            "taken_by": h.taken_by}
