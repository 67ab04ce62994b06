"""Versioned knowledge-base entries: the status flow, roles, rollback, history and diffs.

Every function takes the session, the acting person and `now`; the caller commits, so a failure leaves
nothing half-written.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kb.errors import Conflict, NotFound, PermissionDenied
from kb.models import Entry, EntryEvent, EntryVersion, KbState

ROLES = ("admin", "reviewer", "unit", "operator")

# status → statuses it may move to, and who may make the move
TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("draft", "in_review"): ("admin", "reviewer", "unit"),
    ("in_review", "draft"): ("admin", "reviewer"),  # sent back by the reviewer
    ("in_review", "published"): ("admin", "reviewer"),
    ("draft", "published"): ("admin",),  # the office may publish directly (imports, urgent fixes)
    ("published", "retired"): ("admin", "reviewer"),
    ("published", "superseded"): ("admin", "reviewer"),
}
STATUS_NAMES = {
    "draft": "草稿",
    "in_review": "待审核",
    "published": "已发布",
    "superseded": "已被新版本取代",
    "retired": "已下线",
}
CONTENT_FIELDS = (
    "question",
    "similar_questions",
    "answer",
    "policy_basis",
    "unit",
    "category",
    "tags",
    "effective_from",
    "effective_to",
)


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    unit: str | None = None

    @property
    def is_office(self) -> bool:
        return self.role in ("admin", "reviewer")


class EntryData(BaseModel):
    """One knowledge point in the exchange format (JSONL / CSV / Excel / API)."""

    question: str = Field(min_length=1, max_length=500)
    similar_questions: list[str] = Field(default_factory=list)
    answer: str = Field(min_length=1, max_length=10000)
    policy_basis: str = Field(default="", max_length=2000)
    unit: str = Field(min_length=1, max_length=100)
    category: str = Field(min_length=1, max_length=50)
    tags: list[str] = Field(default_factory=list)
    effective_from: date | None = None
    effective_to: date | None = None

    @field_validator("question", "answer", "unit", "category", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @field_validator("similar_questions", "tags", mode="before")
    @classmethod
    def _clean_list(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, list):
            return [s.strip() for s in v if isinstance(s, str) and s.strip()]
        return v

    @model_validator(mode="after")
    def _dates_in_order(self) -> EntryData:
        if self.effective_from and self.effective_to and self.effective_to < self.effective_from:
            raise ValueError("effective_to 早于 effective_from")
        return self


def _content(v: EntryVersion) -> dict[str, Any]:
    return {f: getattr(v, f) for f in CONTENT_FIELDS}


def version_dict(v: EntryVersion) -> dict[str, Any]:
    d = _content(v)
    d.update(
        entry_id=v.entry_id,
        version=v.version,
        status=v.status,
        author=v.author,
        created_at=v.created_at,
        published_at=v.published_at,
        published_by=v.published_by,
        note=v.note,
    )
    return d


def _event(
    s: Session, entry_id: str, version: int | None, action: str, actor: Actor, now: datetime, detail: str = ""
) -> None:
    s.add(EntryEvent(entry_id=entry_id, version=version, action=action, actor=actor.name, at=now, detail=detail))


def bump_kb_version(s: Session, now: datetime) -> int:
    """Moves the searchable-KB version; every replica's index watcher rebuilds when it sees the change."""
    state = s.get(KbState, 1, with_for_update=True)
    if state is None:
        state = KbState(id=1, version=0, updated_at=now)
        s.add(state)
    state.version += 1
    state.updated_at = now
    s.flush()
    return state.version


def kb_version(s: Session) -> int:
    state = s.get(KbState, 1)
    return state.version if state else 0


def _check_unit(actor: Actor, unit: str) -> None:
    if actor.role == "unit" and actor.unit != unit:
        raise PermissionDenied(f"承办单位“{actor.unit}”只能维护本单位的知识点，此知识点属于“{unit}”")
    if actor.role not in ("admin", "reviewer", "unit"):
        raise PermissionDenied("当前角色无权维护知识库")


def get_entry(s: Session, entry_id: str) -> Entry:
    entry = s.get(Entry, entry_id)
    if entry is None:
        raise NotFound(f"知识点 {entry_id} 不存在")
    return entry


def get_version(s: Session, entry_id: str, version: int) -> EntryVersion:
    v = s.scalar(select(EntryVersion).where(EntryVersion.entry_id == entry_id, EntryVersion.version == version))
    if v is None:
        get_entry(s, entry_id)
        raise NotFound(f"知识点 {entry_id} 没有第 {version} 版")
    return v


def versions(s: Session, entry_id: str) -> list[EntryVersion]:
    get_entry(s, entry_id)
    return list(s.scalars(select(EntryVersion).where(EntryVersion.entry_id == entry_id).order_by(EntryVersion.version)))


def next_entry_id(s: Session) -> str:
    n = s.scalar(select(func.count()).select_from(Entry)) or 0
    while True:
        n += 1
        candidate = f"K{n:05d}"
        if s.get(Entry, candidate) is None:
            return candidate


def create_entry(
    s: Session, actor: Actor, data: EntryData, now: datetime, entry_id: str | None = None, note: str = ""
) -> EntryVersion:
    _check_unit(actor, data.unit)
    entry_id = (entry_id or "").strip() or next_entry_id(s)
    if s.get(Entry, entry_id) is not None:
        raise Conflict(f"知识点 {entry_id} 已存在，请用新增版本修改它")
    s.add(Entry(id=entry_id, unit=data.unit, created_at=now, latest_version=0))
    s.flush()
    return add_version(s, actor, entry_id, data, now, note=note or "新建")


def add_version(
    s: Session, actor: Actor, entry_id: str, data: EntryData, now: datetime, note: str = ""
) -> EntryVersion:
    """A new draft version; the entry's owning unit and the new content's unit must both be the actor's."""
    entry = get_entry(s, entry_id)
    _check_unit(actor, entry.unit)
    _check_unit(actor, data.unit)
    entry.latest_version += 1
    v = EntryVersion(
        entry_id=entry_id,
        version=entry.latest_version,
        status="draft",
        author=actor.name,
        created_at=now,
        note=note,
        **data.model_dump(),
    )
    s.add(v)
    entry.unit = data.unit
    _event(s, entry_id, v.version, "create_version", actor, now, note)
    s.flush()
    return v


def _check_move(actor: Actor, v: EntryVersion, to: str) -> None:
    allowed = TRANSITIONS.get((v.status, to))
    if allowed is None:
        raise Conflict(
            f"知识点 {v.entry_id} 第 {v.version} 版当前为“{STATUS_NAMES[v.status]}”，不能变为“{STATUS_NAMES[to]}”",
            current=v.status,
            requested=to,
        )
    if actor.role not in allowed:
        raise PermissionDenied(f"角色 {actor.role} 不能把知识点从“{STATUS_NAMES[v.status]}”变为“{STATUS_NAMES[to]}”")
    if actor.role == "unit":
        _check_unit(actor, v.unit)


def _move(s: Session, actor: Actor, v: EntryVersion, to: str, now: datetime, note: str = "") -> None:
    _check_move(actor, v, to)
    v.status = to
    _event(s, v.entry_id, v.version, to, actor, now, note)


def submit(s: Session, actor: Actor, entry_id: str, version: int, now: datetime) -> EntryVersion:
    v = get_version(s, entry_id, version)
    _move(s, actor, v, "in_review", now)
    return v


def send_back(s: Session, actor: Actor, entry_id: str, version: int, now: datetime, note: str) -> EntryVersion:
    v = get_version(s, entry_id, version)
    _move(s, actor, v, "draft", now, note)
    return v


def publish(s: Session, actor: Actor, entry_id: str, version: int, now: datetime) -> EntryVersion:
    entry = get_entry(s, entry_id)
    v = get_version(s, entry_id, version)
    if entry.published_version is not None and entry.published_version != version:
        _check_move(actor, v, "published")
        old = get_version(s, entry_id, entry.published_version)
        _move(s, actor, old, "superseded", now, f"被第 {version} 版取代")
    _move(s, actor, v, "published", now)
    v.published_at, v.published_by = now, actor.name
    entry.published_version = version
    bump_kb_version(s, now)
    return v


def retire(s: Session, actor: Actor, entry_id: str, now: datetime, note: str = "") -> EntryVersion:
    entry = get_entry(s, entry_id)
    if entry.published_version is None:
        raise Conflict(f"知识点 {entry_id} 没有已发布的版本，无需下线")
    v = get_version(s, entry_id, entry.published_version)
    _move(s, actor, v, "retired", now, note)
    entry.published_version = None
    bump_kb_version(s, now)
    return v


def rollback(s: Session, actor: Actor, entry_id: str, to_version: int, now: datetime) -> EntryVersion:
    """Publishes a copy of an earlier version as a new version, so history never changes."""
    if not actor.is_office:
        raise PermissionDenied("只有热线办管理员或审核人可以回滚知识点")
    old = get_version(s, entry_id, to_version)
    entry = get_entry(s, entry_id)
    if entry.published_version == to_version:
        raise Conflict(f"第 {to_version} 版正是当前发布版本，无需回滚")
    data = EntryData(**_content(old))
    v = add_version(s, actor, entry_id, data, now, note=f"回滚到第 {to_version} 版")
    v.status = "in_review"
    return publish(s, actor, entry_id, v.version, now)


def history(s: Session, entry_id: str) -> list[EntryEvent]:
    get_entry(s, entry_id)
    return list(s.scalars(select(EntryEvent).where(EntryEvent.entry_id == entry_id).order_by(EntryEvent.id)))


def diff(s: Session, entry_id: str, a: int, b: int) -> list[dict[str, Any]]:
    """Field-by-field differences between two versions; long text fields also get a unified diff."""
    va, vb = get_version(s, entry_id, a), get_version(s, entry_id, b)
    out = []
    for f in CONTENT_FIELDS:
        old, new = getattr(va, f), getattr(vb, f)
        if old == new:
            continue
        change: dict[str, Any] = {"field": f, "old": old, "new": new}
        if isinstance(old, str) and isinstance(new, str):
            change["unified"] = "\n".join(
                difflib.unified_diff(old.splitlines(), new.splitlines(), f"v{a}", f"v{b}", lineterm="")
            )
        out.append(change)
    return out


def searchable_versions(s: Session) -> list[EntryVersion]:
    """Every published version; the index itself filters on effective dates at query time."""
    q = select(EntryVersion).join(
        Entry, (Entry.id == EntryVersion.entry_id) & (Entry.published_version == EntryVersion.version)
    )
    return list(s.scalars(q.order_by(EntryVersion.entry_id)))


def list_entries(
    s: Session, *, category: str | None = None, unit: str | None = None, status: str | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[int, list[EntryVersion]]:
    """Latest version of each entry, filtered."""
    q = select(EntryVersion).join(
        Entry, (Entry.id == EntryVersion.entry_id) & (Entry.latest_version == EntryVersion.version)
    )
    if category:
        q = q.where(EntryVersion.category == category)
    if unit:
        q = q.where(Entry.unit == unit)
    if status:
        q = q.where(EntryVersion.status == status)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = list(s.scalars(q.order_by(EntryVersion.entry_id).limit(limit).offset(offset)))
    return total, rows


def in_effect(v: EntryVersion | Any, today: date) -> bool:
    started = v.effective_from is None or v.effective_from <= today
    return started and (v.effective_to is None or today <= v.effective_to)
