"""查无 (missing answer) and 纠错 (correction) items, policy notices and their update tasks.

Time limits from seed 000 附件4 第二十条: 纠错 within 2 working days, 查无 within 5 working days, and the
knowledge base updated within 5 days of a new policy's publication.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from kb import entries as kbe
from kb.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from kb.models import CalendarDayRow, CalendarYear, EntryVersion, Gap, GapReport, PolicyNotice, UpdateTask
from kb.text import TextProcessor, cjk_count
from kb.workdays import CalendarDay, WorkCalendar

CORRECTION_WORKING_DAYS = 2
MISSING_WORKING_DAYS = 5
POLICY_UPDATE_DAYS = 5
CLUSTER_SIMILARITY = 80  # rapidfuzz token_set_ratio on content words; near-duplicates bump one item
RECUR_LOOKBACK = 5000  # resolved 查无 items a new one is compared with
OFFICE_UNIT = "区12345热线办"
KINDS = {"missing": "查无", "correction": "纠错"}
GAP_STATUSES = ("open", "resolved", "rejected")


# -- calendar ---------------------------------------------------------------------------------------------

def load_calendar(s: Session) -> WorkCalendar:
    days = [CalendarDay(r.day, r.kind, r.name) for r in s.scalars(select(CalendarDayRow))]
    years = list(s.scalars(select(CalendarYear.year)))
    return WorkCalendar(days, years)


def store_calendar_year(
    s: Session, years: set[int], days: Sequence[CalendarDay], actor: kbe.Actor, now: datetime
) -> dict[str, int]:
    """Replaces the office's data for those years, then recomputes every provisional due date."""
    if actor.role != "admin":
        raise PermissionDenied("只有热线办管理员可以导入节假日数据")
    for y in years:
        for row in s.scalars(select(CalendarDayRow)):
            if row.day.year == y:
                s.delete(row)
        if s.get(CalendarYear, y) is None:
            s.add(CalendarYear(year=y, loaded_at=now, loaded_by=actor.name))
    s.flush()
    for d in days:
        s.add(CalendarDayRow(day=d.day, kind=d.kind, name=d.name))
    s.flush()
    cal = load_calendar(s)
    return {"years": len(years), "days": len(days), "recomputed": recompute_provisional(s, cal)}


def recompute_provisional(s: Session, cal: WorkCalendar) -> int:
    n = 0
    for g in s.scalars(select(Gap).where(Gap.due_provisional.is_(True))):
        due = cal.add_working_days(g.created_at.date(), _working_days(g.kind))
        g.due_date, g.due_provisional = due.day, due.provisional
        n += 1
    return n


def _working_days(kind: str) -> int:
    return CORRECTION_WORKING_DAYS if kind == "correction" else MISSING_WORKING_DAYS


# -- gaps -------------------------------------------------------------------------------------------------

def worth_recording(question: str) -> bool:
    """Emoji, greetings and one-word noise are not knowledge gaps."""
    return cjk_count(question) >= 4


def record_missing(
    s: Session, processor: TextProcessor, question: str, channel: str, unit: str | None, now: datetime,
    cal: WorkCalendar, report: str | None = None,
) -> Gap | None:
    """Opens a 查无 item, or bumps the open item whose question is a near-duplicate of this one, or the item the
    office already rejected for it (the KB will not answer it: no new item, no promise of an answer, but the office
    sees how often it is still asked).

    `report` is what the clerk reads for this occurrence when it says more than the question itself."""
    question = question.strip()[:500]
    if not worth_recording(question):
        return None
    report = report or question
    canon = " ".join(processor.words(question))
    for g in s.scalars(select(Gap).where(Gap.kind == "missing", Gap.status == "open")):
        if fuzz.token_set_ratio(canon, g.canonical) >= CLUSTER_SIMILARITY:
            g.count += 1
            g.last_seen_at = now
            s.add(GapReport(gap_id=g.id, text=report, channel=channel, at=now))
            s.flush()
            return g
    declined_id = _closed_like(s, canon, "rejected")
    if declined_id is not None:
        declined = s.get(Gap, declined_id)
        assert declined is not None
        declined.count += 1
        declined.last_seen_at = now
        s.add(GapReport(gap_id=declined.id, text=report, channel=channel, at=now))
        s.flush()
        return declined
    due = cal.add_working_days(now.date(), MISSING_WORKING_DAYS)
    g = Gap(kind="missing", status="open", question=question, canonical=canon, unit=unit or OFFICE_UNIT,
            channel=channel, count=1, created_at=now, last_seen_at=now, due_date=due.day,
            due_provisional=due.provisional, recurs_gap_id=_closed_like(s, canon, "resolved"))
    s.add(g)
    s.flush()
    s.add(GapReport(gap_id=g.id, text=report, channel=channel, at=now))
    s.flush()
    return g


def _closed_like(s: Session, canon: str, status: str) -> int | None:
    """The newest 查无 item closed with `status` (resolved, rejected) whose question this one repeats, if any."""
    rows = s.execute(select(Gap.id, Gap.canonical).where(Gap.kind == "missing", Gap.status == status)
                     .order_by(Gap.id.desc()).limit(RECUR_LOOKBACK)).all()
    return next((gid for gid, c in rows if c and fuzz.token_set_ratio(canon, c) >= CLUSTER_SIMILARITY), None)


def record_rejected_suggestions(
    s: Session, processor: TextProcessor, question: str, shown: Sequence[str], channel: str, now: datetime,
    cal: WorkCalendar,
) -> Gap:
    """A citizen saw the suggested entries and said none of them was what they asked: a 查无 item all the same.

    Near misses (公积金贷款能买车位吗 → 公积金贷款去哪里办) look answerable to the engine; the citizen's 都不是 is
    the signal it lacks. The item goes to the unit owning the first entry shown: the question is about its matter."""
    if not worth_recording(question):
        raise InvalidInput("问题太短，无法记录为查无事项（至少4个汉字）", field="question")
    ids = list(dict.fromkeys(shown))
    versions = []
    for entry_id in ids:
        entry = kbe.get_entry(s, entry_id)  # an unknown id is a 404, not a silently odd record
        versions.append(kbe.get_version(s, entry_id, entry.published_version or entry.latest_version))
    unit = versions[0].unit if versions else None
    seen = "、".join(f"{v.entry_id}（{v.question}）" for v in versions)
    report = f"{question.strip()[:500]}\n〔看过 {seen}，都不是〕" if seen else None
    g = record_missing(s, processor, question, channel, unit, now, cal, report=report)
    assert g is not None  # worth_recording was checked above
    return g


def file_correction(
    s: Session, reporter: str, entry_id: str, version: int | None, comment: str, channel: str, now: datetime,
    cal: WorkCalendar,
) -> Gap:
    comment = comment.strip()
    if not comment:
        raise InvalidInput("请说明答案哪里不对或已过时（comment 不能为空）", field="comment")
    entry = kbe.get_entry(s, entry_id)
    version = version or entry.published_version or entry.latest_version
    v = kbe.get_version(s, entry_id, version)
    due = cal.add_working_days(now.date(), CORRECTION_WORKING_DAYS)
    g = Gap(kind="correction", status="open", question=v.question, canonical="", entry_id=entry_id,
            entry_version=version, comment=comment[:2000], unit=v.unit, channel=channel, count=1, created_at=now,
            last_seen_at=now, due_date=due.day, due_provisional=due.provisional)
    s.add(g)
    s.flush()
    s.add(GapReport(gap_id=g.id, text=f"{reporter}: {comment[:2000]}", channel=channel, at=now))
    return g


def get_gap(s: Session, gap_id: int) -> Gap:
    g = s.get(Gap, gap_id)
    if g is None:
        raise NotFound(f"查无/纠错事项 {gap_id} 不存在")
    return g


def is_overdue(g: Gap, today: date) -> bool:
    done = g.resolved_at.date() if g.resolved_at else None
    return (done or today) > g.due_date


def list_gaps(
    s: Session, today: date, *, unit: str | None = None, kind: str | None = None, status: str | None = None,
    overdue: bool | None = None, recurring: bool | None = None,
) -> list[Gap]:
    if kind and kind not in KINDS:
        raise InvalidInput(f"kind 须为 {', '.join(KINDS)}", field="kind")
    if status and status not in GAP_STATUSES:
        raise InvalidInput(f"status 须为 {', '.join(GAP_STATUSES)}", field="status")
    q = select(Gap)
    if unit:
        q = q.where(Gap.unit == unit)
    if kind:
        q = q.where(Gap.kind == kind)
    if status:
        q = q.where(Gap.status == status)
    if recurring is not None:  # 查无 items that came back after a like one was resolved
        q = q.where(Gap.recurs_gap_id.is_not(None) if recurring else Gap.recurs_gap_id.is_(None))
    rows = list(s.scalars(q.order_by(Gap.due_date, Gap.id)))
    if overdue is not None:
        rows = [g for g in rows if is_overdue(g, today) == overdue]
    return rows


def _check_gap_owner(actor: kbe.Actor, g: Gap) -> None:
    if actor.role == "unit" and actor.unit != g.unit:
        raise PermissionDenied(f"此事项属于“{g.unit}”，承办单位“{actor.unit}”无权处理")
    if actor.role not in ("admin", "reviewer", "unit"):
        raise PermissionDenied("当前角色无权处理查无/纠错事项")


def resolve_gap(
    s: Session, actor: kbe.Actor, gap_id: int, entry_id: str, version: int, now: datetime, note: str = "",
    add_question: bool = False,
) -> Gap:
    """Closes the item by linking the published version that answers or fixes it. A 查无 item the office rejected
    can be closed so too, when the KB comes to answer it after all: it then leaves the near-miss bank."""
    g = get_gap(s, gap_id)
    _check_gap_owner(actor, g)
    if add_question and g.kind != "missing":  # checked first: nothing is closed by a request refused
        raise InvalidInput("只有查无事项可以把市民的提问加为相似问法", field="add_question")
    if g.status != "open" and not (g.kind == "missing" and g.status == "rejected"):
        raise Conflict(f"事项 {gap_id} 已是“{g.status}”状态，不能再次办结")
    v = kbe.get_version(s, entry_id, version)
    if v.status != "published":
        raise Conflict(f"知识点 {entry_id} 第 {version} 版尚未发布；请先发布修正后的版本再办结")
    if g.kind == "correction" and entry_id == g.entry_id and version <= (g.entry_version or 0):
        raise Conflict(f"纠错须由比第 {g.entry_version} 版更新的版本办结")
    g.status, g.resolved_at, g.resolved_by = "resolved", now, actor.name
    g.resolved_entry_id, g.resolved_version, g.resolution_note = entry_id, version, note
    return g


def add_asked_wording(s: Session, actor: kbe.Actor, g: Gap, now: datetime) -> EntryVersion | None:
    """The citizen's own wording of a resolved 查无 item becomes a similar question of the entry that answers it: a
    new version, published at once by the office, submitted for review by a unit. Wordings from the people being
    served are what the search learns most from (docs/search.md). None when the entry already has that wording."""
    if g.kind != "missing" or g.status != "resolved" or not g.resolved_entry_id or not g.resolved_version:
        raise InvalidInput("只有已办结的查无事项可以把市民的提问加为相似问法", field="add_question")
    v = kbe.get_version(s, g.resolved_entry_id, g.resolved_version)
    wording = g.question.strip()
    if wording in (v.question, *v.similar_questions):
        return None
    content = {f: getattr(v, f) for f in kbe.CONTENT_FIELDS}
    data = kbe.EntryData(**{**content, "similar_questions": [*v.similar_questions, wording]})
    new = kbe.add_version(s, actor, v.entry_id, data, now, note=f"查无事项 {g.id} 的提问加为相似问法")
    if actor.role == "admin":
        return kbe.publish(s, actor, v.entry_id, new.version, now)
    kbe.submit(s, actor, v.entry_id, new.version, now)
    if actor.role == "reviewer":
        return kbe.publish(s, actor, v.entry_id, new.version, now)
    return new  # a unit's version waits for the reviewer


def reject_gap(s: Session, actor: kbe.Actor, gap_id: int, now: datetime, note: str) -> Gap:
    """The office closes an item that is not a real gap (spam, out of scope), with the reason kept. A rejected 查无
    question counts as one the KB will not answer: it joins the near-miss bank (refused when asked again) and later
    askings bump this item instead of opening new ones. When the KB does answer it, resolve it with that version
    instead."""
    if not actor.is_office:
        raise PermissionDenied("只有热线办可以驳回查无/纠错事项")
    if not note.strip():
        raise InvalidInput("驳回须说明理由", field="note")
    g = get_gap(s, gap_id)
    if g.status != "open":
        raise Conflict(f"事项 {gap_id} 已是“{g.status}”状态")
    g.status, g.resolved_at, g.resolved_by, g.resolution_note = "rejected", now, actor.name, note
    return g


def reports(s: Session, gap_id: int) -> list[GapReport]:
    return list(s.scalars(select(GapReport).where(GapReport.gap_id == gap_id).order_by(GapReport.id)))


# -- policy notices ---------------------------------------------------------------------------------------

def register_notice(
    s: Session, actor: kbe.Actor, *, title: str, doc_number: str, published_on: date, text: str, unit: str,
    affected: Sequence[tuple[str, str, float]], now: datetime,
) -> tuple[PolicyNotice, list[UpdateTask]]:
    """Stores the notice and opens one update task per affected (entry_id, unit, score)."""
    if actor.role not in ("admin", "reviewer", "unit"):
        raise PermissionDenied("当前角色无权登记新政策")
    if actor.role == "unit" and actor.unit != unit:
        raise PermissionDenied(f"承办单位“{actor.unit}”只能登记本单位的政策")
    if not title.strip() or not text.strip():
        raise InvalidInput("政策标题和正文不能为空")
    n = PolicyNotice(title=title.strip(), doc_number=doc_number.strip(), published_on=published_on, text=text,
                     unit=unit, created_by=actor.name, created_at=now)
    s.add(n)
    s.flush()
    due = published_on + timedelta(days=POLICY_UPDATE_DAYS)
    tasks = [UpdateTask(notice_id=n.id, entry_id=e, unit=u, score=round(sc, 4), due_date=due, status="open")
             for e, u, sc in affected]
    s.add_all(tasks)
    s.flush()
    return n, tasks


def resolve_task(s: Session, actor: kbe.Actor, task_id: int, version: int | None, now: datetime) -> UpdateTask:
    """Done with the version that carries the update, or with none when the entry needs no change."""
    t = s.get(UpdateTask, task_id)
    if t is None:
        raise NotFound(f"更新任务 {task_id} 不存在")
    if actor.role == "unit" and actor.unit != t.unit:
        raise PermissionDenied(f"此任务属于“{t.unit}”")
    if actor.role not in ("admin", "reviewer", "unit"):
        raise PermissionDenied("当前角色无权处理更新任务")
    if t.status != "open":
        raise Conflict(f"更新任务 {task_id} 已完成")
    if version is not None and kbe.get_version(s, t.entry_id, version).status != "published":
        raise Conflict(f"知识点 {t.entry_id} 第 {version} 版尚未发布")
    t.status, t.resolved_version, t.resolved_at = "done", version, now
    return t
