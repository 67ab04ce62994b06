"""Unit report rates and ranking computed by hand."""

from datetime import date, datetime, timedelta

from api.domain.reports import GapFacts, OrderFacts, unit_reports, weekly_counts
from kb.workdays import TZ

T = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)
D = timedelta(days=1)


def order(unit, contact_in=None, reply_in=None, result=None, sat=None, returns=0, supervised=0):
    return OrderFacts(unit, T, T + D, T + 5 * D, T + contact_in * D if contact_in is not None else None,
                      T + reply_in * D if reply_in is not None else None, result, sat, returns, supervised)


def test_rates_and_ranking():
    orders = [
        order("甲局", 0.5, 3, "实际解决", "满意"),
        order("甲局", 2, 6, "解释说明", "不满意", returns=1, supervised=1),  # late contact, late reply
        order("乙局", 0.2, 1, "实际解决", "认可"),
    ]
    gaps = [GapFacts("甲局", date(2026, 11, 5), date(2026, 11, 4)), GapFacts("甲局", date(2026, 11, 5), None),
            GapFacts("乙局", date(2026, 11, 25), None, recurring=True)]  # not yet due: counted, not rated
    reports = {r.unit: r for r in unit_reports(orders, gaps, date(2026, 11, 20))}
    a = reports["甲局"]
    assert a.orders == 2 and a.supervised == 1
    assert a.rates == {"first_contact_rate": 0.5, "on_time_rate": 0.5, "resolved_rate": 0.5, "satisfaction_rate": 0.5,
                       "return_rate": 0.5, "kb_on_time_rate": 0.5}
    b = reports["乙局"]
    assert b.rates["first_contact_rate"] == 1.0 and b.rates["kb_on_time_rate"] is None
    assert (a.kb_recurring, b.kb_recurring) == (0, 1)
    assert [r.unit for r in unit_reports(orders, gaps, date(2026, 11, 20))] == ["乙局", "甲局"]


def test_weekly_counts():
    weeks = weekly_counts([order("甲局", 0.5, 3), order("乙局", 1, 9)], date(2026, 10, 26), date(2026, 11, 8))
    assert weeks == [{"week": "2026-10-26", "received": 0, "on_time": 0},
                     {"week": "2026-11-02", "received": 2, "on_time": 1}]
