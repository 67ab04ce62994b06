"""Scope classification of a citizen message (受理范围 / 不予受理范围) with routing suggestions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator

from api.domain.intake import default_classifier, load_units

router = APIRouter(prefix="/api/v1/intake", tags=["intake"])


class ClassifyIn(BaseModel):
    text: str = Field(max_length=5000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("内容不能为空")
        return v


@router.post("/classify")
async def classify(body: ClassifyIn) -> dict[str, Any]:
    return await run_in_threadpool(default_classifier().classify, body.text)


@router.get("/units")
def units() -> list[dict[str, Any]]:
    """The unit directory routing and dispatch use: names, district, level and duties."""
    return [{"name": u.name, "district": u.district, "level": u.level, "duties": u.duties} for u in load_units()]
