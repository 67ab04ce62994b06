"""通报与考核: per-unit rates over a period, a ranking, and a weekly trend (seed 000 第二十一、二十二条).

Pure: takes plain facts about each order and each KB gap, returns numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

METRICS = {
    "first_contact_rate": "先行联系率",
    "on_time_rate": "按时办结率",
    "resolved_rate": "实际解决率",
    "satisfaction_rate": "满意率",
    "return_rate": "退单率",
    "supervised": "督办数",
    "kb_on_time_rate": "查无纠错按时率",
    "kb_recurring": "查无复发数",
}


@dataclass(frozen=True)
class OrderFacts:
    unit: str
    received_at: datetime
    first_contact_due: datetime | None
    handling_due: datetime | None
    first_contact_at: datetime | None = None
    replied_at: datetime | None = None
    result: str | None = None
    satisfaction: str | None = None
    returns: int = 0
    supervised: int = 0


@dataclass(frozen=True)
class GapFacts:
    unit: str
    due_date: date
    resolved_on: date | None
    recurring: bool = False  # a 查无 item repeating one already resolved: the published answer is not being found


@dataclass
class UnitReport:
    unit: str
    orders: int = 0
    rates: dict[str, float | None] = field(default_factory=dict)
    supervised: int = 0
    score: float = 0.0
    kb_recurring: int = 0


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def unit_reports(orders: Iterable[OrderFacts], gaps: Iterable[GapFacts], today: date) -> list[UnitReport]:
    """Reports ranked by the mean of the four appraisal rates of 第二十二条 (先行联系, 实际解决, 满意, 查无纠错)."""
    by_unit: dict[str, list[OrderFacts]] = defaultdict(list)
    for o in orders:
        by_unit[o.unit].append(o)
    gaps_by_unit: dict[str, list[GapFacts]] = defaultdict(list)
    for g in gaps:
        gaps_by_unit[g.unit].append(g)
    out = []
    for unit in sorted(set(by_unit) | set(gaps_by_unit)):
        os_ = by_unit.get(unit, [])
        contacted = sum(1 for o in os_ if o.first_contact_at and o.first_contact_due
                        and o.first_contact_at <= o.first_contact_due)
        replied = [o for o in os_ if o.replied_at]
        on_time = sum(1 for o in replied if o.handling_due and o.replied_at and o.replied_at <= o.handling_due)
        rated = [o for o in os_ if o.satisfaction in ("满意", "认可", "不满意")]
        gs = [g for g in gaps_by_unit.get(unit, []) if g.due_date <= today or g.resolved_on]
        kb_ok = sum(1 for g in gs if g.resolved_on and g.resolved_on <= g.due_date)
        rates = {
            "first_contact_rate": _rate(contacted, len(os_)),
            "on_time_rate": _rate(on_time, len(replied)),
            "resolved_rate": _rate(sum(1 for o in replied if o.result == "实际解决"), len(replied)),
            "satisfaction_rate": _rate(sum(1 for o in rated if o.satisfaction in ("满意", "认可")), len(rated)),
            "return_rate": _rate(sum(1 for o in os_ if o.returns), len(os_)),
            "kb_on_time_rate": _rate(kb_ok, len(gs)),
        }
        appraisal = [rates[k] for k in ("first_contact_rate", "resolved_rate", "satisfaction_rate", "kb_on_time_rate")
                     if rates[k] is not None]
        out.append(UnitReport(unit, len(os_), rates, sum(o.supervised for o in os_),
                              round(sum(appraisal) / len(appraisal), 4) if appraisal else 0.0,
                              sum(1 for g in gaps_by_unit.get(unit, []) if g.recurring)))
    out.sort(key=lambda r: (-r.score, r.unit))
    return out


def weekly_counts(orders: Iterable[OrderFacts], start: date, end: date) -> list[dict[str, object]]:
    """Orders received and replied on time per ISO week, Monday-based."""
    monday = start - timedelta(days=start.weekday())
    weeks: dict[date, dict[str, int]] = {}
    d = monday
    while d <= end:
        weeks[d] = {"received": 0, "on_time": 0}
        d += timedelta(days=7)
    for o in orders:
        day = o.received_at.date()
        wk = day - timedelta(days=day.weekday())
        if wk in weeks:
            weeks[wk]["received"] += 1
            if o.replied_at and o.handling_due and o.replied_at <= o.handling_due:
                weeks[wk]["on_time"] += 1
    return [{"week": k.isoformat(), **v} for k, v in sorted(weeks.items())]
