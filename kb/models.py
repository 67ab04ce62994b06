"""SQLAlchemy 2.0 models of the knowledge base. Alembic owns the schema (api/migrations)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kb.workdays import TZ


class AwareDateTime(TypeDecorator[datetime]):
    """Stored as UTC, returned in Asia/Shanghai; SQLite has no time zones, so we never trust the backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass a timezone-aware time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(TZ)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: AwareDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Entry(Base):
    __tablename__ = "kb_entries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime]
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)


class EntryVersion(Base):
    """Immutable content; only `status` and the review stamps change after creation."""

    __tablename__ = "kb_entry_versions"
    __table_args__ = (UniqueConstraint("entry_id", "version", name="uq_entry_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("kb_entries.id"), index=True)
    version: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), index=True)
    question: Mapped[str] = mapped_column(Text)
    similar_questions: Mapped[list[str]]
    answer: Mapped[str] = mapped_column(Text)
    policy_basis: Mapped[str] = mapped_column(Text, default="")
    unit: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(50), index=True)
    tags: Mapped[list[str]]
    effective_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    effective_to: Mapped[date | None] = mapped_column(Date, nullable=True)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(nullable=True)
    published_by: Mapped[str | None] = mapped_column(String(100), nullable=True)


class EntryEvent(Base):
    """Append-only audit log of everything done to an entry."""

    __tablename__ = "kb_entry_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(30))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")


class Synonym(Base):
    __tablename__ = "kb_synonyms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    term: Mapped[str] = mapped_column(String(100), unique=True)
    canonical: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class KbState(Base):
    """One row. `version` moves whenever the searchable KB changes, so every replica knows to rebuild."""

    __tablename__ = "kb_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class Gap(Base):
    """查无 (kind=missing) or 纠错 (kind=correction) item."""

    __tablename__ = "kb_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True, default="open")
    question: Mapped[str] = mapped_column(Text)
    canonical: Mapped[str] = mapped_column(Text, default="")
    entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    entry_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    unit: Mapped[str] = mapped_column(String(100), index=True)
    channel: Mapped[str] = mapped_column(String(30))
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    due_date: Mapped[date] = mapped_column(Date)
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # a 查无 item opened after a like one was resolved: the answer then published did not reach the search
    recurs_gap_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolved_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolution_note: Mapped[str] = mapped_column(Text, default="")


class GapReport(Base):
    """Each time a citizen or operator hit the gap: the item's count is the number of these."""

    __tablename__ = "kb_gap_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gap_id: Mapped[int] = mapped_column(ForeignKey("kb_gaps.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime]


class PolicyNotice(Base):
    __tablename__ = "kb_policy_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(Text)
    doc_number: Mapped[str] = mapped_column(String(100), default="")
    published_on: Mapped[date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class UpdateTask(Base):
    """An entry that a new policy probably affects; due 5 days after the policy's publication."""

    __tablename__ = "kb_update_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("kb_policy_notices.id"), index=True)
    entry_id: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(100), index=True)
    score: Mapped[float] = mapped_column(Float)
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="open")
    resolved_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)


class CalendarDayRow(Base):
    """Holidays and make-up workdays the office loaded for years `chinesecalendar` does not know yet."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(50), default="")


class CalendarYear(Base):
    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    loaded_at: Mapped[datetime]
    loaded_by: Mapped[str] = mapped_column(String(100))


class ApiToken(Base):
    """Bearer tokens for units, reviewers and operators; only a hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class WorkOrder(Base):
    """A citizen's request handled by a unit. `status`, `unit` and `deadlines` are derived from the event log
    and cached here for listing; the log is the truth."""

    __tablename__ = "work_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(10), index=True)
    content: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(Text, default="")
    contact_name: Mapped[str] = mapped_column(String(50), default="")
    contact_phone: Mapped[str] = mapped_column(String(20), default="")
    tags: Mapped[list[str]]
    preset_id: Mapped[str] = mapped_column(String(50))
    ticket_type: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), index=True)
    unit: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    deadlines: Mapped[dict[str, Any]]
    repeat_of: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    repeat_count: Mapped[int] = mapped_column(Integer, default=1)
    supervision: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # "<creator>|<Idempotency-Key>": a client that timed out and retries gets the order it already made
    client_key: Mapped[str | None] = mapped_column(String(240), nullable=True, unique=True)


class WorkOrderEvent(Base):
    """Append-only. (order, seq) is unique, so two clerks acting at once cannot both append step n."""

    __tablename__ = "work_order_events"
    __table_args__ = (UniqueConstraint("order_id", "seq", name="uq_work_order_event_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    seq: Mapped[int]
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]]


class WorkOrderCounter(Base):
    """Per-day counter behind work-order numbers; incremented atomically (upsert … returning)."""

    __tablename__ = "work_order_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class Handoff(Base):
    """A conversation the bot hands to a human operator: on request, on threat wording, or when it is stuck."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sender_id: Mapped[str] = mapped_column(String(128), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(20))
    threat: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), index=True, default="waiting")
    created_at: Mapped[datetime]
    taken_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    taken_at: Mapped[datetime | None] = mapped_column(nullable=True)
