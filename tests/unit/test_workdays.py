from datetime import date

import pytest

from kb.workdays import CalendarDataError, CalendarDay, WorkCalendar, parse_calendar_file


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


def test_national_day_2026_is_skipped(cal):
    # 10-01..10-07 are the 国庆/中秋 holidays; the 2nd working day after 09-30 is Friday 10-09.
    due = cal.add_working_days(date(2026, 9, 30), 2)
    assert due.day == date(2026, 10, 9) and not due.provisional


def test_make_up_saturday_counts(cal):
    # 2026-10-10 is a Saturday worked in exchange (调休).
    assert cal.add_working_days(date(2026, 10, 8), 2).day == date(2026, 10, 10)
    # 2026-09-20 is a Sunday worked in exchange.
    assert cal.add_working_days(date(2026, 9, 18), 1).day == date(2026, 9, 20)
    # Spring festival: 2026-02-14 (Saturday) is a make-up workday, 02-15..02-23 are off.
    assert cal.add_working_days(date(2026, 2, 13), 1).day == date(2026, 2, 14)
    assert cal.add_working_days(date(2026, 2, 14), 1).day == date(2026, 2, 24)


def test_ordinary_week(cal):
    assert cal.add_working_days(date(2026, 11, 20), 5).day == date(2026, 11, 27)  # Fri → next Fri


def test_across_the_year_end_is_provisional_until_the_year_is_loaded(cal):
    due = cal.add_working_days(date(2026, 12, 28), 5)
    # 12-29, 12-30, 12-31, then 2027 judged on weekdays: 01-01 (Fri), 01-04 (Mon)
    assert due.day == date(2027, 1, 4) and due.provisional
    loaded = WorkCalendar(
        [CalendarDay(date(2027, 1, 1), "holiday", "元旦"), CalendarDay(date(2027, 1, 4), "holiday", "假想调休")],
        [2027],
    )
    due2 = loaded.add_working_days(date(2026, 12, 28), 5)
    assert due2.day == date(2027, 1, 6) and not due2.provisional


def test_a_date_inside_a_known_year_is_not_provisional(cal):
    assert not cal.add_working_days(date(2026, 12, 1), 2).provisional


def test_calendar_file_json_and_csv():
    years, days = parse_calendar_file(
        b'{"year": 2027, "days": [{"date": "2027-01-01", "type": "holiday", "name": "\xe5\x85\x83\xe6\x97\xa6"}]}',
        "2027.json",
    )
    assert years == {2027} and days[0].kind == "holiday"
    years, days = parse_calendar_file(b"date,type,name\n2027-02-06,workday,x\n", "2027.csv")
    assert years == {2027} and days[0].kind == "workday"


@pytest.mark.parametrize(
    "content,fragment",
    [
        (b'{"year": 2027, "days": [{"date": "2027-13-01", "type": "holiday"}]}', "date"),
        (b'{"year": 2027, "days": [{"date": "2027-01-01", "type": "off"}]}', "type"),
        (b'{"year": 2027, "days": [{"date": "2028-01-01", "type": "holiday"}]}', "2027"),
        (b"{not json", "JSON"),
    ],
)
def test_calendar_file_errors_name_the_problem(content, fragment):
    with pytest.raises(CalendarDataError, match=fragment):
        parse_calendar_file(content, "x.json")
