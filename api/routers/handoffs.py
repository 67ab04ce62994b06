"""The queue of conversations the bot handed to a human (转人工), threats first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api import handoffs as svc
from api.deps import ActorDep, NowDep, SessionDep

router = APIRouter(prefix="/api/v1/handoffs", tags=["handoffs"])


class HandoffIn(BaseModel):
    sender_id: str = Field(min_length=1, max_length=128)
    channel: str = Field("", max_length=20)
    reason: str
    threat: bool = False
    text: str = Field("", max_length=2000)
    transcript: list[str] = Field(default_factory=list, max_length=200)


@router.post("", status_code=201)
def create(body: HandoffIn, s: SessionDep, now: NowDep, actor: ActorDep) -> dict[str, Any]:
    return svc.public(svc.create(s, actor, body.model_dump(), now))


@router.get("")
def waiting(s: SessionDep, actor: ActorDep, threat: bool = False, sender_id: str | None = None) -> list[dict[str, Any]]:
    return [svc.public(h) for h in svc.waiting(s, actor, threat, sender_id)]


@router.post("/{handoff_id}/take")
def take(handoff_id: int, s: SessionDep, now: NowDep, actor: ActorDep) -> dict[str, Any]:
    return svc.public(svc.take(s, actor, handoff_id, now))
