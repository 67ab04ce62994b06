"""Every transition of the work-order life cycle, legal and illegal, on the Baoshan and Hangzhou presets."""

from datetime import datetime, timedelta

import pytest

from api.domain.sla import get_preset
from api.domain.workorder import ALLOWED_FROM, Event, IllegalTransition, State, apply, replay
from kb.errors import InvalidInput
from kb.workdays import TZ, WorkCalendar

CAL = WorkCalendar()
BAOSHAN = get_preset("baoshan-jianguanwei")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TZ)  # a Monday


def ev(kind, hours=0, **data):
    return Event(kind, T0 + timedelta(hours=hours), "测试", data)


HAPPY = [ev("受理"), ev("派单", 1, unit="区城管执法局"), ev("签收", 2), ev("先行联系", 3),
         ev("办结回复", 30, result="实际解决"), ev("审核", 31, approved=True), ev("回访", 40, satisfaction="满意"),
         ev("结案", 41)]


def test_happy_path_ends_closed():
    s = replay(HAPPY, BAOSHAN, CAL)
    assert s.status == "结案" and s.result == "实际解决" and s.satisfaction == "满意"


def test_unsatisfied_callback_reopens_and_cannot_be_closed_directly():
    events = HAPPY[:6] + [ev("回访", 40, satisfaction="不满意")]
    s = replay(events, BAOSHAN, CAL)
    with pytest.raises(IllegalTransition, match="不满退回"):
        apply(s, ev("结案", 41), BAOSHAN, CAL)
    s = apply(s, ev("不满退回", 41), BAOSHAN, CAL)
    assert s.status == "不满退回" and s.reopened == 1
    for e in [ev("办结回复", 45, result="解释说明"), ev("审核", 46, approved=True), ev("回访", 50, satisfaction="认可"),
              ev("结案", 51)]:
        s = apply(s, e, BAOSHAN, CAL)
    assert s.status == "结案"


def test_review_rejection_sends_back_to_handling():
    s = replay(HAPPY[:5] + [ev("审核", 31, approved=False)], BAOSHAN, CAL)
    assert s.status == "先行联系"


def test_extension_returns_to_where_it_was():
    s = replay(HAPPY[:4] + [ev("延期申请", 5, reason="需协调多个部门"), ev("延期审批", 6, approved=True)], BAOSHAN, CAL)
    assert s.status == "先行联系" and s.extension_approved


def test_return_within_window_then_second_dispatch_cannot_be_returned():
    s = replay([ev("受理"), ev("派单", 1, unit="区房管局"), ev("退单", 5, reason="不属本单位职责", evidence=["三定方案"])],
               BAOSHAN, CAL)
    assert s.status == "退单" and s.returns == 1
    s = apply(s, ev("派单", 6, unit="区房管局"), BAOSHAN, CAL)  # office refused the return: same unit again
    with pytest.raises(IllegalTransition, match="不得再次退单"):
        apply(s, ev("退单", 7, reason="还是不归我们", evidence=["x"]), BAOSHAN, CAL)


def test_return_after_the_window_is_deemed_accepted():
    s = replay([ev("受理"), ev("派单", 1, unit="区房管局")], BAOSHAN, CAL)
    # dispatched Monday 11-02: 3 working days → Thursday 11-05 end of day
    with pytest.raises(IllegalTransition, match="视作接收"):
        apply(s, ev("退单", 24 * 4, reason="不属本单位", evidence=["x"]), BAOSHAN, CAL)
    assert apply(s, ev("退单", 24 * 3, reason="不属本单位", evidence=["x"]), BAOSHAN, CAL).status == "退单"


def test_return_needs_reason_and_evidence():
    s = replay([ev("受理"), ev("派单", 1, unit="区房管局")], BAOSHAN, CAL)
    with pytest.raises(IllegalTransition, match="理由"):
        apply(s, ev("退单", 2, evidence=["x"]), BAOSHAN, CAL)
    with pytest.raises(IllegalTransition, match="依据"):
        apply(s, ev("退单", 2, reason="不归我们"), BAOSHAN, CAL)


def test_three_returns_need_a_designated_unit():
    hz = get_preset("hangzhou")
    events = [ev("受理")]
    for i, unit in enumerate(["甲局", "乙局", "丙局"]):
        events += [ev("派单", i * 2 + 1, unit=unit), ev("退单", i * 2 + 2, reason="非本单位职责", evidence=["x"])]
    s = replay(events, hz, CAL)
    assert s.returns == 3 and s.needs_designation
    with pytest.raises(IllegalTransition, match="指定承办单位"):
        apply(s, ev("派单", 8, unit="丁局"), hz, CAL)
    s = apply(s, ev("派单", 8, unit="丁局", designated=True), hz, CAL)
    with pytest.raises(IllegalTransition, match="不得再次退单"):
        apply(s, ev("退单", 9, reason="x", evidence=["x"]), hz, CAL)


@pytest.mark.parametrize("kind", [k for k in ALLOWED_FROM if k != "受理"])
def test_nothing_but_受理_may_start_an_order(kind):
    with pytest.raises(IllegalTransition, match="尚未受理"):
        apply(State(), ev(kind), BAOSHAN, CAL)


@pytest.mark.parametrize("upto,kind", [(2, "办结回复"), (3, "回访"), (4, "审核"), (1, "签收"), (8, "派单")])
def test_out_of_order_events_are_refused(upto, kind):
    s = replay(HAPPY[:upto], BAOSHAN, CAL)
    with pytest.raises(IllegalTransition):
        apply(s, ev(kind, 50, unit="x", result="实际解决", satisfaction="满意", approved=True), BAOSHAN, CAL)


def test_bad_payloads():
    s = replay(HAPPY[:4], BAOSHAN, CAL)
    with pytest.raises(IllegalTransition, match="办结结果"):
        apply(s, ev("办结回复", 5, result="办好了"), BAOSHAN, CAL)
    with pytest.raises(InvalidInput, match="未知的工单事件"):
        apply(s, ev("催单", 5), BAOSHAN, CAL)
    with pytest.raises(IllegalTransition, match="承办单位"):
        apply(replay([ev("受理")], BAOSHAN, CAL), ev("派单", 1, unit=" "), BAOSHAN, CAL)
