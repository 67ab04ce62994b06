"""Work-order time limits (SLA presets) as data, one preset per hotline system in the seeds.

Pure domain code: it takes the receipt time and a working-day calendar and returns deadlines; it never reads
the clock or the database. A deadline that rests on a day in a year nobody has loaded is marked provisional.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from kb.errors import NotFound
from kb.workdays import TZ, WorkCalendar

PRESET_DIR = Path(__file__).parent / "presets"
UNITS = ("workday", "day", "hour", "same_day")
END_OF_DAY = time(23, 59, 59)


class UnknownPreset(NotFound):
    pass


@dataclass(frozen=True)
class Limit:
    amount: int
    unit: str
    basis: str
    cutoff: time | None = None  # same_day limits: received after the cutoff → the next day

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Limit:
        if d["unit"] not in UNITS:
            raise ValueError(f"unknown limit unit {d['unit']!r}")
        cutoff = time.fromisoformat(d["cutoff"]) if d.get("cutoff") else None
        return cls(int(d["amount"]), d["unit"], d["basis"], cutoff)


@dataclass(frozen=True)
class Deadline:
    at: datetime
    provisional: bool
    basis: str

    def public(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "provisional": self.provisional, "basis": self.basis}


@dataclass(frozen=True)
class Preset:
    id: str
    title: str
    source: str
    document: str
    limits: dict[str, Limit]
    handling: dict[str, Limit]
    extension_max: Limit | None = None
    repeat_supervision_at: int | None = None
    returns_before_designation: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    def handling_limit(self, ticket_type: str | None) -> Limit:
        """The handling limit of a ticket type (普通/紧急/扬言… or quick/complex), else the preset's default."""
        return self.handling.get(ticket_type or "", self.handling["default"])


def due(limit: Limit, start: datetime, cal: WorkCalendar) -> Deadline:
    """When a limit counted from `start` runs out. Working and natural days end at the end of their day."""
    start = start.astimezone(TZ)
    if limit.unit == "hour":
        at = start + timedelta(hours=limit.amount)
        return Deadline(at, not cal.known(at.date()), limit.basis)
    if limit.unit == "same_day":
        day: date = start.date()
        if limit.cutoff is not None and start.time() >= limit.cutoff:
            day += timedelta(days=1)
        return Deadline(datetime.combine(day, END_OF_DAY, TZ), False, limit.basis)
    if limit.unit == "day":
        day = start.date() + timedelta(days=limit.amount)
        return Deadline(datetime.combine(day, END_OF_DAY, TZ), False, limit.basis)
    wd = cal.add_working_days(start.date(), limit.amount)
    return Deadline(datetime.combine(wd.day, END_OF_DAY, TZ), wd.provisional, limit.basis)


def deadlines(preset: Preset, received_at: datetime, cal: WorkCalendar, ticket_type: str | None = None
              ) -> dict[str, Deadline]:
    """Every deadline of an order received at `received_at`: `handling` plus each limit the preset has."""
    out = {name: due(limit, received_at, cal) for name, limit in preset.limits.items()}
    out["handling"] = due(preset.handling_limit(ticket_type), received_at, cal)
    return out


def _parse(d: dict[str, Any]) -> Preset:
    known = {"id", "title", "source", "document", "limits", "handling", "extension_max", "repeat_supervision_at",
             "returns_before_designation"}
    return Preset(
        id=d["id"], title=d["title"], source=d["source"], document=d.get("document", ""),
        limits={k: Limit.parse(v) for k, v in d.get("limits", {}).items()},
        handling={k: Limit.parse(v) for k, v in d["handling"].items()},
        extension_max=Limit.parse(d["extension_max"]) if d.get("extension_max") else None,
        repeat_supervision_at=d.get("repeat_supervision_at"),
        returns_before_designation=d.get("returns_before_designation", 3),
        extra={k: v for k, v in d.items() if k not in known},
    )


@lru_cache(maxsize=1)
def load_presets(directory: Path = PRESET_DIR) -> dict[str, Preset]:
    presets = {}
    for f in sorted(directory.glob("*.json")):
        p = _parse(json.loads(f.read_text(encoding="utf-8")))
        if "default" not in p.handling:
            raise ValueError(f"preset {p.id}: handling needs a default")
        presets[p.id] = p
    return presets


def get_preset(preset_id: str) -> Preset:
    try:
        return load_presets()[preset_id]
    except KeyError:
        raise UnknownPreset(f"没有名为 {preset_id!r} 的时限预设；可用：{', '.join(load_presets())}") from None
