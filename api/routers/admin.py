"""Health and bearer tokens for units, reviewers and operators."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import ActorDep, AdminDep, NowDep, SearchDep, SessionDep, token_hash
from api.domain.intake import classifier_ready
from api.schemas import TokenIn, TokenOut
from kb.errors import InvalidInput, NotFound
from kb.models import ApiToken

router = APIRouter(tags=["admin"])


@router.get("/health")
def health(service: SearchDep, now: NowDep) -> dict[str, Any]:
    info = service.health(now.date())
    status = "ok" if service.index is not None and not info["last_error"] else "degraded"
    return {"status": status, **info, "intake_ready": classifier_ready()}


@router.get("/api/v1/auth/me")
def me(actor: ActorDep) -> dict[str, Any]:
    return {"name": actor.name, "role": actor.role, "unit": actor.unit}


@router.post("/api/v1/auth/tokens", response_model=TokenOut, status_code=201)
def create_token(body: TokenIn, s: SessionDep, now: NowDep, actor: AdminDep) -> TokenOut:
    if body.role == "unit" and not (body.unit or "").strip():
        raise InvalidInput("承办单位令牌须写明 unit", field="unit")
    token = secrets.token_urlsafe(24)
    row = ApiToken(token_hash=token_hash(token), name=body.name, role=body.role,
                   unit=body.unit.strip() if body.unit else None, created_at=now)
    s.add(row)
    s.flush()
    return TokenOut(id=row.id, name=row.name, role=row.role, unit=row.unit, token=token)


@router.get("/api/v1/auth/tokens", response_model=list[TokenOut])
def list_tokens(s: SessionDep, actor: AdminDep) -> list[TokenOut]:
    return [TokenOut(id=r.id, name=r.name, role=r.role, unit=r.unit)
            for r in s.scalars(select(ApiToken).where(ApiToken.revoked.is_(False)))]


@router.delete("/api/v1/auth/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, s: SessionDep, actor: AdminDep) -> None:
    row = s.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"令牌 {token_id} 不存在")
    row.revoked = True
