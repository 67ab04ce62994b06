"""Working-day arithmetic on China's statutory calendar, 调休 included.

`chinesecalendar` knows a year only once the State Council has announced it (today: up to 2026). The hotline
office loads later years from a data file; a date in a year nobody has loaded is judged on weekdays alone and
every result that rested on such a date is marked provisional, so it can be recomputed once the year arrives.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

TZ = ZoneInfo("Asia/Shanghai")
DAY_TYPES = ("holiday", "workday")


@dataclass(frozen=True)
class CalendarDay:
    day: date
    kind: str  # "holiday" (a weekday off) or "workday" (a weekend day worked, 调休)
    name: str = ""


@dataclass(frozen=True)
class DueDate:
    day: date
    provisional: bool

    def end_of_day(self) -> datetime:
        return datetime.combine(self.day, time(23, 59, 59), TZ)


class CalendarDataError(ValueError):
    pass


def _package_years() -> frozenset[int]:
    years = set()
    for y in range(2004, 2100):
        try:
            chinese_calendar.is_workday(date(y, 6, 1))
        except NotImplementedError:
            continue
        years.add(y)
    return frozenset(years)


PACKAGE_YEARS = _package_years()


class WorkCalendar:
    """Days loaded by the office override the package; the package covers its own years; beyond, weekdays."""

    def __init__(self, office_days: Iterable[CalendarDay] = (), office_years: Iterable[int] = ()):
        self.office: dict[date, CalendarDay] = {d.day: d for d in office_days}
        self.office_years = frozenset(office_years) | {d.year for d in self.office}

    def known(self, d: date) -> bool:
        return d.year in self.office_years or d.year in PACKAGE_YEARS

    def is_workday(self, d: date) -> bool:
        if d in self.office:
            return self.office[d].kind == "workday"
        if d.year in self.office_years or d.year not in PACKAGE_YEARS:
            return d.weekday() < 5
        return chinese_calendar.is_workday(d)

    def add_working_days(self, start: date, n: int) -> DueDate:
        """The n-th working day after `start` (the day of receipt is not counted)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        d, provisional = start, not self.known(start) and n == 0
        counted = 0
        while counted < n:
            d += timedelta(days=1)
            provisional = provisional or not self.known(d)
            if self.is_workday(d):
                counted += 1
        return DueDate(d, provisional)

    def next_workday(self, d: date) -> DueDate:
        """`d` itself if it is a working day, else the first one after it."""
        provisional = not self.known(d)
        while not self.is_workday(d):
            d += timedelta(days=1)
            provisional = provisional or not self.known(d)
        return DueDate(d, provisional)

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        n, d = 0, start
        while d < end:
            d += timedelta(days=1)
            n += self.is_workday(d)
        return n


def parse_calendar_file(content: bytes, filename: str = "") -> tuple[set[int], list[CalendarDay]]:
    """Read an office calendar file: JSON `{"year": 2027, "days": [{"date", "type", "name"}]}` (or a list of
    such objects) or CSV with columns date,type,name. Returns the years it declares and the days."""
    text = content.decode("utf-8-sig")
    rows: list[Mapping[str, str]]
    years: set[int] = set()
    if filename.endswith(".json") or text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CalendarDataError(f"日历文件不是合法的 JSON：第 {e.lineno} 行 {e.msg}") from e
        blocks = data if isinstance(data, list) else [data]
        rows = []
        for b in blocks:
            if not isinstance(b, dict) or "year" not in b or not isinstance(b.get("days"), list):
                raise CalendarDataError('日历文件每一段须有 "year" 和 "days" 列表')
            years.add(int(b["year"]))
            rows.extend(b["days"])
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    days: list[CalendarDay] = []
    for i, row in enumerate(rows, start=1):
        try:
            day = date.fromisoformat(str(row.get("date", "")).strip())
        except ValueError as e:
            raise CalendarDataError(f"第 {i} 行：date 不是 YYYY-MM-DD 日期：{row.get('date')!r}") from e
        kind = str(row.get("type", "")).strip()
        if kind not in DAY_TYPES:
            raise CalendarDataError(f"第 {i} 行：type 须为 holiday 或 workday，而不是 {kind!r}")
        if years and day.year not in years:
            raise CalendarDataError(f"第 {i} 行：日期 {day} 不在文件声明的年份 {sorted(years)} 内")
        days.append(CalendarDay(day, kind, str(row.get("name", "") or "").strip()))
    if not years:
        years = {d.day.year for d in days}
    if not years:
        raise CalendarDataError("日历文件没有任何日期")
    return years, days
