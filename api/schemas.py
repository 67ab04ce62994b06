"""Request and response models (XCreate / XPublic families)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from kb.entries import EntryData

CHANNELS = ("web", "wechat", "bot", "operator", "api")


class SearchRequest(BaseModel):
    query: str = Field(max_length=10000, description="市民的问题")
    top_k: int = Field(5, ge=1, le=20)
    channel: Literal["web", "wechat", "bot", "operator", "api"] = "web"

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("问题不能为空")
        return v


class SearchResult(BaseModel):
    entry_id: str
    version: int
    question: str
    matched_question: str
    answer: str
    policy_basis: str
    unit: str
    category: str
    score: float


class SearchResponse(BaseModel):
    decision: Literal["answer", "clarify", "no_answer"]
    confidence: float
    results: list[SearchResult]
    gap_id: int | None = Field(
        None, description="no_answer 时为市民开立或累计的查无事项；热线办已驳回的同类问题不再开立，为空")
    kb_version: int | None = None


class EntryCreate(EntryData):
    id: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class VersionPublic(EntryData):
    entry_id: str
    version: int
    status: str
    author: str
    created_at: datetime
    published_at: datetime | None
    published_by: str | None
    note: str


class EntryPublic(BaseModel):
    id: str
    unit: str
    published_version: int | None
    latest_version: int
    current: VersionPublic
    versions: list[VersionPublic]


class EntryList(BaseModel):
    total: int
    items: list[VersionPublic]


class EventPublic(BaseModel):
    version: int | None
    action: str
    actor: str
    at: datetime
    detail: str


class NoteIn(BaseModel):
    note: str = Field("", max_length=2000)


class RollbackIn(BaseModel):
    version: int = Field(ge=1)


class SynonymIn(BaseModel):
    term: str = Field(min_length=1, max_length=100)
    canonical: str = Field(min_length=1, max_length=100)


class SynonymPublic(SynonymIn):
    id: int
    created_by: str
    created_at: datetime


class CorrectionIn(BaseModel):
    entry_id: str = Field(min_length=1, max_length=64)
    version: int | None = Field(None, ge=1)
    comment: str = Field(min_length=1, max_length=2000)
    channel: Literal["web", "wechat", "bot", "operator", "api"] = "web"


class MissingIn(BaseModel):
    question: str = Field(min_length=1, max_length=2000, description="市民原话")
    shown: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=10, description="已推荐给市民、被说“都不是”的知识点编号")
    channel: Literal["web", "wechat", "bot", "operator", "api"] = "web"


class GapPublic(BaseModel):
    id: int
    kind: str
    status: str
    question: str
    entry_id: str | None
    entry_version: int | None
    comment: str
    unit: str
    channel: str
    count: int
    created_at: datetime
    last_seen_at: datetime
    due_date: date
    due_provisional: bool
    recurs_gap_id: int | None = Field(None, description="此查无事项重复了哪条已解决的事项（答案未能被检索到）")
    overdue: bool
    resolved_at: datetime | None
    resolved_entry_id: str | None
    resolved_version: int | None
    resolution_note: str


class ResolveIn(BaseModel):
    entry_id: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)
    note: str = Field("", max_length=2000)
    add_question: bool = Field(
        False, description="查无事项：把市民的原话加为该知识点的相似问法（新版本；单位提交审核，热线办直接发布）")


class GapResolved(GapPublic):
    question_version: int | None = Field(None, description="加入原话的新版本号（add_question；已有该问法时为空）")
    question_version_status: str | None = None


class NoticeIn(BaseModel):
    title: str = Field(min_length=1, max_length=300)
    doc_number: str = Field("", max_length=100)
    published_on: date
    text: str = Field(min_length=1, max_length=100000)
    unit: str = Field(min_length=1, max_length=100)


class TaskPublic(BaseModel):
    id: int
    notice_id: int
    entry_id: str
    unit: str
    score: float
    due_date: date
    status: str
    overdue: bool
    resolved_version: int | None


class NoticePublic(BaseModel):
    id: int
    title: str
    doc_number: str
    published_on: date
    unit: str
    created_by: str
    created_at: datetime
    tasks: list[TaskPublic]


class TaskResolveIn(BaseModel):
    version: int | None = Field(None, ge=1)


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["reviewer", "unit", "operator", "admin"]
    unit: str | None = Field(None, max_length=100)


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    unit: str | None
    token: str | None = None


class CalendarDayIn(BaseModel):
    date: date
    type: Literal["holiday", "workday"]
    name: str = ""


class CalendarYearIn(BaseModel):
    year: int = Field(ge=2000, le=2100)
    days: list[CalendarDayIn]
