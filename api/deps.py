"""Typed FastAPI dependencies: session, clock, the acting person and role checks."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from kb.db import transaction
from kb.entries import Actor
from kb.errors import KbError, PermissionDenied
from kb.models import ApiToken
from kb.service import SearchService
from kb.workdays import TZ


class Unauthorized(KbError):
    status_code = 401


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on any error."""
    with transaction(request.app.state.session_factory) as s:
        yield s


def get_now(request: Request) -> datetime:
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock else datetime.now(TZ)


def get_search(request: Request) -> SearchService:
    return request.app.state.search


SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(get_now)]
SearchDep = Annotated[SearchService, Depends(get_search)]
_bearer = HTTPBearer(auto_error=False)


def get_actor(
    request: Request, s: SessionDep, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor | None:
    if cred is None:
        return None
    token = cred.credentials
    if token == request.app.state.settings.admin_token:
        return Actor("热线办管理员", "admin")
    if token == request.app.state.settings.bot_token:
        return Actor("对话机器人", "bot")
    row = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or row.revoked:
        raise Unauthorized("令牌无效或已吊销")
    return Actor(row.name, row.role, row.unit)


def require_actor(actor: Annotated[Actor | None, Depends(get_actor)]) -> Actor:
    if actor is None:
        raise Unauthorized("需要登录：请在 Authorization 头中提供 Bearer 令牌")
    return actor


def require_roles(*roles: str):  # type: ignore[no-untyped-def]
    def check(actor: Annotated[Actor, Depends(require_actor)]) -> Actor:
        if actor.role not in roles:
            raise PermissionDenied(f"此操作需要角色：{'/'.join(roles)}；当前角色：{actor.role}")
        return actor

    return check


OptionalActor = Annotated[Actor | None, Depends(get_actor)]
ActorDep = Annotated[Actor, Depends(require_actor)]
AdminDep = Annotated[Actor, Depends(require_roles("admin"))]
StaffDep = Annotated[Actor, Depends(require_roles("admin", "reviewer", "unit", "operator"))]
BotOrStaffDep = Annotated[Actor, Depends(require_roles("admin", "reviewer", "unit", "operator", "bot"))]
