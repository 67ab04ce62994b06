"""Work-order time-limit presets (the work-order lifecycle itself arrives with issue #3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter

from api.deps import NowDep, SessionDep
from api.domain.sla import deadlines, get_preset, load_presets
from kb import gaps
from kb.errors import InvalidInput

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
