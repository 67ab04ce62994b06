"""通报与考核: unit reports for a period, CSV / Excel export, and a weekly trend page."""

from __future__ import annotations

import csv
import html
import io
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from api.deps import ActorDep, NowDep, SessionDep
from api.domain.reports import METRICS, GapFacts, OrderFacts, unit_reports, weekly_counts
from kb.errors import InvalidInput, PermissionDenied
from kb.models import Gap, WorkOrder, WorkOrderEvent
from kb.workdays import TZ

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


def _period(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    end = end or today
    start = start or end - timedelta(days=27)
    if start > end:
        raise InvalidInput("start 不能晚于 end")
    if (end - start).days > 366:
        raise InvalidInput("统计区间最长一年")
    return start, end


def _facts(s: SessionDep, start: date, end: date) -> tuple[list[OrderFacts], list[GapFacts]]:
    lo, hi = datetime.combine(start, time.min, TZ), datetime.combine(end, time.max, TZ)
    orders = list(s.scalars(select(WorkOrder).where(WorkOrder.received_at >= lo, WorkOrder.received_at <= hi,
                                                    WorkOrder.unit.is_not(None))))
    events: dict[int, list[WorkOrderEvent]] = {}
    if orders:
        for e in s.scalars(select(WorkOrderEvent).where(WorkOrderEvent.order_id.in_([o.id for o in orders]))
                           .order_by(WorkOrderEvent.seq)):
            events.setdefault(e.order_id, []).append(e)
    facts = []
    for o in orders:
        log = events.get(o.id, [])

        def first(kind: str, log: list[WorkOrderEvent] = log) -> WorkOrderEvent | None:
            return next((e for e in log if e.kind == kind), None)

        def due(key: str, o: WorkOrder = o) -> datetime | None:
            at = o.deadlines.get(key, {}).get("at")
            return datetime.fromisoformat(at) if at else None

        reply = first("办结回复")
        contact = first("先行联系") or reply  # a reply by phone is a contact too
        callback = next((e for e in reversed(log) if e.kind == "回访"), None)
        facts.append(OrderFacts(
            unit=o.unit or "", received_at=o.received_at, first_contact_due=due("first_contact"),
            handling_due=due("handling"), first_contact_at=contact.at if contact else None,
            replied_at=reply.at if reply else None, result=reply.data.get("result") if reply else None,
            satisfaction=callback.data.get("satisfaction") if callback else None,
            returns=sum(1 for e in log if e.kind == "退单"), supervised=len(o.supervision)))
    gaps = [GapFacts(g.unit, g.due_date, g.resolved_at.date() if g.resolved_at and g.status == "resolved" else None,
                     g.recurs_gap_id is not None)
            for g in s.scalars(select(Gap).where(Gap.due_date >= start, Gap.due_date <= end))]
    return facts, gaps


def _check(actor: Any) -> None:
    if actor.role not in ("admin", "reviewer"):
        raise PermissionDenied("通报与考核数据仅对热线办开放")


@router.get("/units")
def units(s: SessionDep, now: NowDep, actor: ActorDep, start: date | None = None, end: date | None = None
          ) -> dict[str, Any]:
    _check(actor)
    start, end = _period(start, end, now.date())
    orders, gaps = _facts(s, start, end)
    ranked = unit_reports(orders, gaps, now.date())
    return {"start": start, "end": end, "metrics": METRICS,
            "units": [{"rank": i, "unit": r.unit, "orders": r.orders, "supervised": r.supervised, "score": r.score,
                       "kb_recurring": r.kb_recurring, **r.rates} for i, r in enumerate(ranked, 1)]}


@router.get("/units/export")
def export(s: SessionDep, now: NowDep, actor: ActorDep, format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
           start: date | None = None, end: date | None = None) -> Response:
    data = units(s, now, actor, start, end)
    header = ["排名", "承办单位", "工单数", *METRICS.values(), "综合得分"]
    keys = ["rank", "unit", "orders", *METRICS, "score"]
    rows = [[u.get(k) for k in keys] for u in data["units"]]
    name = f"units-{data['start']}-{data['end']}.{format}"
    if format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        return Response(buf.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                         headers={"Content-Disposition": f'attachment; filename="{name}"'})
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "承办单位考核"
    ws.append(header)
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return Response(out.getvalue(), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/weekly")
def weekly(s: SessionDep, now: NowDep, actor: ActorDep, start: date | None = None, end: date | None = None
           ) -> dict[str, Any]:
    _check(actor)
    start, end = _period(start, end, now.date())
    orders, _ = _facts(s, start, end)
    return {"start": start, "end": end, "weeks": weekly_counts(orders, start, end)}


@router.get("/weekly/chart", response_class=HTMLResponse)
def weekly_chart(s: SessionDep, now: NowDep, actor: ActorDep, start: date | None = None, end: date | None = None
                 ) -> HTMLResponse:
    """An SVG bar chart of orders received and replied on time per week, for the office to look at."""
    weeks = weekly(s, now, actor, start, end)["weeks"]
    top = max([w["received"] for w in weeks] + [1])
    bars = []
    for i, w in enumerate(weeks):
        x = 60 + i * 70
        h1, h2 = 220 * w["received"] / top, 220 * w["on_time"] / top
        bars.append(f'<rect x="{x}" y="{250 - h1:.1f}" width="26" height="{h1:.1f}" fill="#4e79a7"/>'
                    f'<rect x="{x + 28}" y="{250 - h2:.1f}" width="26" height="{h2:.1f}" fill="#59a14f"/>'
                    f'<text x="{x}" y="268" font-size="11">{html.escape(str(w["week"])[5:])}</text>'
                    f'<text x="{x}" y="{245 - h1:.1f}" font-size="11">{w["received"]}</text>')
    width = 80 + 70 * len(weeks)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="290">'
           f'<line x1="50" y1="250" x2="{width}" y2="250" stroke="#333"/>{"".join(bars)}</svg>')
    page = ("<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>工单周趋势</title>"
            "<body style='font-family:sans-serif'><h1>工单周趋势</h1>"
            "<p><span style='color:#4e79a7'>■</span> 受理工单数 <span style='color:#59a14f'>■</span> 按时办结数</p>"
            f"{svg}</body></html>")
    return HTMLResponse(page)
