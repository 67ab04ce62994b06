"""Every preset's deadlines against dates computed by hand on the 2026 calendar (调休 included)."""

from datetime import date, datetime

import pytest

from api.domain.sla import UnknownPreset, deadlines, get_preset, load_presets
from kb.workdays import TZ, CalendarDay, WorkCalendar

CAL = WorkCalendar()
# Wednesday before the 2026 National Day holiday (10-01..10-07 off, Saturday 10-10 worked).
BEFORE_NATIONAL_DAY = datetime(2026, 9, 30, 10, 0, tzinfo=TZ)


def days(preset_id, received=BEFORE_NATIONAL_DAY, ticket_type=None, cal=CAL):
    return {k: d.at.date() for k, d in deadlines(get_preset(preset_id), received, cal, ticket_type).items()}


def test_every_seed_hotline_has_a_preset():
    sources = {p.source for p in load_presets().values()}
    assert {"000_5368833ecf77cc7a.txt", "001_40c574ce7ed1135a.txt", "003_b42744b906fa49a7.txt",
            "004_c93f2143ff81cc21.txt"} <= sources
    assert {"baoshan-jianguanwei", "youyilu", "hangzhou", "songjiang-minzhengju-12345",
            "songjiang-minzhengju-962200", "songjiang-minzhengju-xinfang", "baoshan-xinfang"} <= set(load_presets())


def test_baoshan_jianguanwei():
    d = days("baoshan-jianguanwei")
    assert d["first_contact"] == date(2026, 10, 8)
    assert d["return_window"] == date(2026, 10, 10)  # 10-08, 10-09, 10-10 (make-up Saturday)
    assert d["handling"] == date(2026, 10, 13)  # 08, 09, 10, 12, 13
    assert d["callback_recheck"] == date(2026, 10, 9)
    assert d["supervision"] == date(2026, 10, 13)
    assert d["extension_request"] == date(2026, 10, 20)
    assert days("baoshan-jianguanwei", ticket_type="quick")["handling"] == date(2026, 10, 8)
    assert days("baoshan-jianguanwei", ticket_type="complex")["handling"] == date(2026, 10, 20)
    assert days("baoshan-jianguanwei", ticket_type="紧急")["handling"] == date(2026, 10, 8)


def test_youyilu():
    d = days("youyilu")
    assert (d["first_contact"], d["handling"], d["callback_recheck"], d["extension_request"]) == (
        date(2026, 10, 8), date(2026, 10, 13), date(2026, 10, 10), date(2026, 10, 10))
    assert get_preset("youyilu").repeat_supervision_at == 3


def test_hangzhou():
    assert days("hangzhou")["handling"] == date(2026, 10, 15)  # 7 working days
    assert days("hangzhou", ticket_type="紧急")["handling"] == date(2026, 10, 8)
    assert days("hangzhou")["designated_unit"] == date(2026, 10, 13)


def test_songjiang_12345_ticket_types_and_the_16_00_rule():
    assert days("songjiang-minzhengju-12345", ticket_type="普通")["handling"] == date(2026, 10, 15)
    assert days("songjiang-minzhengju-12345", ticket_type="扬言")["handling"] == date(2026, 10, 10)
    assert days("songjiang-minzhengju-12345", ticket_type="随申拍")["handling"] == date(2026, 10, 3)  # natural days
    assert days("songjiang-minzhengju-12345", ticket_type="紧急")["handling"] == date(2026, 9, 30)
    late = datetime(2026, 9, 30, 16, 30, tzinfo=TZ)
    assert days("songjiang-minzhengju-12345", late, "紧急")["handling"] == date(2026, 10, 1)
    assert days("songjiang-minzhengju-12345", late, "次紧急")["handling"] == date(2026, 10, 1)
    assert days("songjiang-minzhengju-12345")["return_window"] == date(2026, 10, 8)


def test_songjiang_962200_and_xinfang():
    assert days("songjiang-minzhengju-962200")["handling"] == date(2026, 10, 13)
    d = days("songjiang-minzhengju-xinfang")
    assert d["first_contact"] == date(2026, 10, 8) and d["handling"] == date(2026, 10, 21)


def test_baoshan_xinfang_uses_natural_days():
    d = days("baoshan-xinfang")
    assert d["handling"] == date(2026, 10, 20)  # 20 日
    assert d["acceptance_notice"] == date(2026, 10, 13)  # 5 个工作日
    assert d["written_reply_difficult"] == date(2026, 11, 29)
    assert days("baoshan-xinfang", ticket_type="important")["handling"] == date(2026, 10, 10)


def test_spring_festival_2026():
    received = datetime(2026, 2, 13, 9, 0, tzinfo=TZ)  # Friday; Saturday 02-14 is worked, 02-15..02-23 off
    d = days("baoshan-jianguanwei", received)
    assert d["first_contact"] == date(2026, 2, 14)
    assert d["handling"] == date(2026, 2, 27)  # 02-14, 02-24, 25, 26, 27


def test_across_the_year_end_deadlines_are_provisional_until_the_year_is_loaded():
    received = datetime(2026, 12, 28, 9, 0, tzinfo=TZ)
    ds = deadlines(get_preset("baoshan-jianguanwei"), received, CAL)
    assert ds["first_contact"].at.date() == date(2026, 12, 29) and not ds["first_contact"].provisional
    assert ds["handling"].at.date() == date(2027, 1, 4) and ds["handling"].provisional
    loaded = WorkCalendar([CalendarDay(date(2027, 1, 1), "holiday", "元旦")], [2027])
    ds2 = deadlines(get_preset("baoshan-jianguanwei"), received, loaded)
    # with 元旦 loaded: 12-29, 12-30, 12-31, 01-04, 01-05
    assert ds2["handling"].at.date() == date(2027, 1, 5) and not ds2["handling"].provisional


def test_deadline_is_the_end_of_the_day_in_shanghai():
    d = deadlines(get_preset("youyilu"), BEFORE_NATIONAL_DAY, CAL)["first_contact"]
    assert d.at == datetime(2026, 10, 8, 23, 59, 59, tzinfo=TZ)
    assert "先行联系" in d.basis


def test_unknown_preset_is_named():
    with pytest.raises(UnknownPreset, match="youyilu"):
        get_preset("nope")
