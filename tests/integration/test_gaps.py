"""查无 / 纠错 items and policy update tasks on real databases."""

from datetime import date, datetime, timedelta

import pytest

from kb import entries as kbe
from kb import gaps
from kb.db import transaction
from kb.errors import Conflict, PermissionDenied
from kb.text import TextProcessor
from kb.workdays import TZ, CalendarDay

ADMIN = kbe.Actor("管理员", "admin")
MZ = kbe.Actor("民政经办", "unit", "区民政局")
RS = kbe.Actor("人社经办", "unit", "区人力资源和社会保障局")
TP = TextProcessor()


def _entry(s, now):
    d = kbe.EntryData(question="如何申请低保？", answer="向街道申请。", unit="区民政局", category="民政")
    v = kbe.create_entry(s, ADMIN, d, now, entry_id="MZ001")
    kbe.publish(s, ADMIN, "MZ001", v.version, now)


def test_missing_items_cluster_and_count(factory, now):
    with transaction(factory) as s:
        cal = gaps.load_calendar(s)
        g1 = gaps.record_missing(s, TP, "收养孩子需要办理什么手续", "web", "区民政局", now, cal)
        g2 = gaps.record_missing(s, TP, "请问收养孩子要办理哪些手续呢", "wechat", None, now, cal)
        g3 = gaps.record_missing(s, TP, "电动自行车上牌去哪里办理", "web", None, now, cal)
        assert g1.id == g2.id != g3.id
        assert g1.count == 2
        assert g3.unit == gaps.OFFICE_UNIT
        assert gaps.record_missing(s, TP, "😀😀 hello", "web", None, now, cal) is None
    with factory() as s:
        assert len(gaps.reports(s, g1.id)) == 2


def test_due_dates_in_working_days_around_national_day(factory):
    received = datetime(2026, 9, 30, 15, 0, tzinfo=TZ)
    with transaction(factory) as s:
        _entry(s, received)
        cal = gaps.load_calendar(s)
        corr = gaps.file_correction(s, "话务员", "MZ001", None, "材料清单已变更", "operator", received, cal)
        miss = gaps.record_missing(s, TP, "收养孩子需要办理什么手续", "web", "区民政局", received, cal)
        assert corr.due_date == date(2026, 10, 9)  # 2 working days: 10-08, 10-09
        assert miss.due_date == date(2026, 10, 13)  # 5 working days: 10-08, 10-09, 10-10 (调休 Sat), 10-12, 10-13
        assert corr.entry_version == 1 and corr.unit == "区民政局"


def test_provisional_due_date_recomputed_when_the_year_is_loaded(factory):
    received = datetime(2026, 12, 29, 9, 0, tzinfo=TZ)
    with transaction(factory) as s:
        g = gaps.record_missing(s, TP, "收养孩子需要办理什么手续", "web", None, received, gaps.load_calendar(s))
        assert g.due_provisional and g.due_date == date(2027, 1, 5)
        days = [CalendarDay(date(2027, 1, 1), "holiday", "元旦"), CalendarDay(date(2027, 1, 4), "holiday", "假想")]
        result = gaps.store_calendar_year(s, {2027}, days, ADMIN, received)
        assert result["recomputed"] == 1
    with factory() as s:
        g = gaps.get_gap(s, g.id)
        assert not g.due_provisional and g.due_date == date(2027, 1, 7)


def test_resolve_needs_a_published_newer_version_and_the_right_unit(factory, now):
    with transaction(factory) as s:
        _entry(s, now)
        g = gaps.file_correction(s, "市民", "MZ001", 1, "答案已过时", "web", now, gaps.load_calendar(s))
        gid = g.id
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        gaps.resolve_gap(s, RS, gid, "MZ001", 1, now)
    with pytest.raises(Conflict, match="更新的版本"), transaction(factory) as s:
        gaps.resolve_gap(s, MZ, gid, "MZ001", 1, now)
    with transaction(factory) as s:
        v2 = kbe.add_version(s, MZ, "MZ001", kbe.EntryData(question="如何申请低保？", answer="新答案。", unit="区民政局",
                                                           category="民政"), now)
        kbe.submit(s, MZ, "MZ001", v2.version, now)
        kbe.publish(s, ADMIN, "MZ001", v2.version, now)
        g = gaps.resolve_gap(s, MZ, gid, "MZ001", 2, now + timedelta(days=1), "已更新材料清单")
        assert g.status == "resolved" and not gaps.is_overdue(g, now.date() + timedelta(days=30))
    with pytest.raises(Conflict), transaction(factory) as s:
        gaps.resolve_gap(s, MZ, gid, "MZ001", 2, now)


def test_overdue_filter(factory, now):
    with transaction(factory) as s:
        gaps.record_missing(s, TP, "收养孩子需要办理什么手续", "web", "区民政局", now, gaps.load_calendar(s))
    with factory() as s:
        assert gaps.list_gaps(s, now.date(), overdue=True) == []
        late = gaps.list_gaps(s, now.date() + timedelta(days=30), overdue=True, unit="区民政局", kind="missing")
        assert len(late) == 1


def test_policy_notice_opens_tasks_due_five_days_after_publication(factory, now):
    with transaction(factory) as s:
        _entry(s, now)
        n, tasks = gaps.register_notice(s, MZ, title="关于调整最低生活保障标准的通知", doc_number="X民〔2026〕1号",
                                        published_on=date(2026, 9, 28), text="……", unit="区民政局",
                                        affected=[("MZ001", "区民政局", 0.8)], now=now)
        assert [t.due_date for t in tasks] == [date(2026, 10, 3)]
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        gaps.register_notice(s, RS, title="t", doc_number="", published_on=date(2026, 9, 28), text="x",
                             unit="区民政局", affected=[], now=now)


def test_a_missing_item_that_repeats_a_resolved_one_says_so_and_stays_out_of_the_near_miss_bank(factory, now):
    from kb.service import open_missing_questions

    with transaction(factory) as s:
        _entry(s, now)
        cal = gaps.load_calendar(s)
        first = gaps.record_missing(s, TP, "低保家庭的孩子上大学学费能减免吗", "web", "区民政局", now, cal)
        other = gaps.record_missing(s, TP, "电动自行车上牌去哪里办理", "web", None, now, cal)
        assert first.recurs_gap_id is None
        first_id, other_id = first.id, other.id
    with factory() as s:
        assert set(open_missing_questions(s)) == {"低保家庭的孩子上大学学费能减免吗", "电动自行车上牌去哪里办理"}
    with transaction(factory) as s:
        gaps.resolve_gap(s, ADMIN, first_id, "MZ001", 1, now + timedelta(hours=1), "新增了答案")
    with transaction(factory) as s:
        again = gaps.record_missing(s, TP, "低保户孩子上大学学费可以减免吗", "wechat", None, now + timedelta(hours=2),
                                    gaps.load_calendar(s))
        assert again.id not in (first_id, other_id) and again.recurs_gap_id == first_id
        again_id = again.id
    with factory() as s:
        assert open_missing_questions(s) == ["电动自行车上牌去哪里办理"]
        today = (now + timedelta(hours=2)).date()
        assert [g.id for g in gaps.list_gaps(s, today, recurring=True)] == [again_id]
        assert again_id not in [g.id for g in gaps.list_gaps(s, today, kind="missing", recurring=False)]


def test_a_rejected_missing_item_takes_later_askings_and_stays_in_the_bank_until_resolved(factory, now):
    from kb.service import declined_missing_questions, missing_signature, open_missing_questions

    with transaction(factory) as s:
        _entry(s, now)
        g = gaps.record_missing(s, TP, "小区门口的网红奶茶店哪家最好喝", "web", None, now, gaps.load_calendar(s))
        gid = g.id
        before = missing_signature(s)
    with transaction(factory) as s:
        gaps.reject_gap(s, ADMIN, gid, now + timedelta(hours=1), "非政务咨询")
        assert missing_signature(s) != before
    with transaction(factory) as s:
        again = gaps.record_missing(s, TP, "请问小区门口网红奶茶店哪家好喝", "wechat", None, now + timedelta(hours=2),
                                    gaps.load_calendar(s))
        assert again.id == gid and again.status == "rejected" and again.count == 2
    with factory() as s:
        assert open_missing_questions(s) == []
        assert declined_missing_questions(s) == ["小区门口的网红奶茶店哪家最好喝"]
        assert len(gaps.reports(s, gid)) == 2
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        gaps.resolve_gap(s, RS, gid, "MZ001", 1, now)  # still the owner's to close
    with transaction(factory) as s:
        assert gaps.resolve_gap(s, ADMIN, gid, "MZ001", 1, now + timedelta(hours=3)).status == "resolved"
    with factory() as s:
        assert declined_missing_questions(s) == []
    with pytest.raises(Conflict), transaction(factory) as s:
        corr = gaps.file_correction(s, "市民", "MZ001", 1, "电话号码不对", "web", now, gaps.load_calendar(s))
        gaps.reject_gap(s, ADMIN, corr.id, now, "已核实无误")
        gaps.resolve_gap(s, ADMIN, corr.id, "MZ001", 1, now)  # a rejected correction stays closed
