"""督办 and repeat detection. Pure functions over plain values; the service stores what they return.

Repeats (seed 001 第十二条): the same contact or the same place with similar content within 30 days is the
same matter; the third time raises 督办. 督办 also follows an overdue order, an unsatisfied callback, or a
leader's or the media's attention (seed 000 第十六条); a supervised order is due in 5 working days unless the
office sets another limit (seed 000 第十八条).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz

from api.domain.sla import Limit, due
from kb.workdays import WorkCalendar

REPEAT_WINDOW = timedelta(days=30)
REPEAT_SIMILARITY = 60  # token-set ratio on content words
REASONS = {
    "repeat": "重复投诉3次及以上",
    "overdue": "逾期未办结",
    "unsatisfied": "回访不满意",
    "leader": "上级领导交办、批示",
    "media": "舆论媒体披露",
    "other": "其他应予督办的事项",
}
DEFAULT_LIMIT = Limit(5, "workday", "宝建〔2021〕11号 附件4 第十八条：未指定期限的，在5个工作日内办理")


@dataclass(frozen=True)
class Earlier:
    number: str
    root: str  # the first order of the chain
    received_at: datetime
    phone: str
    address: str
    words: str


def find_repeat(phone: str, address: str, words: str, received_at: datetime, earlier: list[Earlier]
                ) -> Earlier | None:
    """The most recent earlier order on the same matter, if any."""
    for e in sorted(earlier, key=lambda e: e.received_at, reverse=True):
        if received_at - e.received_at > REPEAT_WINDOW or e.received_at > received_at:
            continue
        same_party = bool(phone) and phone == e.phone
        same_place = bool(address.strip()) and address.strip() == e.address.strip()
        if (same_party or same_place) and fuzz.token_set_ratio(words, e.words) >= REPEAT_SIMILARITY:
            return e
    return None


def supervision_entry(reason: str, at: datetime, by: str, cal: WorkCalendar, note: str = "",
                      working_days: int | None = None) -> dict[str, object]:
    if reason not in REASONS:
        raise ValueError(reason)
    limit = DEFAULT_LIMIT if working_days is None else Limit(working_days, "workday", "热线办指定期限")
    d = due(limit, at, cal)
    return {"reason": reason, "reason_text": REASONS[reason], "note": note, "at": at.isoformat(), "by": by,
            "due": d.at.isoformat(), "provisional": d.provisional, "basis": limit.basis}
