"""The work-order life cycle as an append-only event log; status is derived by replaying it.

受理 → 派单 → 签收 or 退单 → 先行联系 → 延期申请 / 延期审批 → 办结回复 → 审核 → 回访 → 结案, or 不满退回 → handled
again. `apply` checks one new event against the replayed state and the preset's time limits and raises
`IllegalTransition` with a message a clerk understands; nothing is appended then. Pure: no clock, no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from api.domain.sla import Preset, due
from kb.errors import Conflict, InvalidInput
from kb.workdays import WorkCalendar

RESULTS = ("实际解决", "解释说明", "参考备案", "不属实", "诉求过高")
SATISFACTION = ("满意", "不满意", "认可", "未评价")

# event → the statuses it may follow
ALLOWED_FROM: dict[str, tuple[str | None, ...]] = {
    "受理": (None,),
    "派单": ("受理", "退单"),
    "签收": ("派单",),
    "退单": ("派单",),
    "先行联系": ("签收", "不满退回"),
    "延期申请": ("签收", "先行联系", "不满退回"),
    "延期审批": ("延期申请",),
    "办结回复": ("签收", "先行联系", "不满退回"),
    "审核": ("办结回复",),
    "回访": ("审核通过",),
    "结案": ("回访",),
    "不满退回": ("回访",),
}


class IllegalTransition(Conflict):
    pass


@dataclass(frozen=True)
class Event:
    kind: str
    at: datetime
    actor: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    status: str | None = None
    unit: str | None = None
    dispatched_at: datetime | None = None
    returns: int = 0
    returned_units: tuple[str, ...] = ()
    second_dispatch: bool = False  # the office kept the order with a unit after refusing its return
    before_extension: str | None = None
    extension_approved: bool = False
    result: str | None = None
    satisfaction: str | None = None
    reopened: int = 0
    reopened_at: datetime | None = None

    @property
    def needs_designation(self) -> bool:
        """≥ 3 returns: the office designates the handling unit (seed 003 第十七条)."""
        return self.returns >= 3


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise IllegalTransition(message)


def apply(state: State, event: Event, preset: Preset, cal: WorkCalendar) -> State:
    """The state after `event`, or IllegalTransition with the reason."""
    if event.kind not in ALLOWED_FROM:
        raise InvalidInput(f"未知的工单事件：{event.kind}；可用：{'、'.join(ALLOWED_FROM)}")
    if state.status not in ALLOWED_FROM[event.kind]:
        now = state.status or "（尚未受理）"
        allowed = "、".join(s or "（新工单）" for s in ALLOWED_FROM[event.kind])
        raise IllegalTransition(f"工单当前状态为“{now}”，不能“{event.kind}”（须在 {allowed} 之后）")
    d = event.data
    k = event.kind
    if k == "受理":
        return replace(state, status="受理")
    if k == "派单":
        unit = str(d.get("unit") or "").strip()
        _require(bool(unit), "派单须指定承办单位")
        if state.needs_designation:
            _require(bool(d.get("designated")), f"该工单已退单 {state.returns} 次，须由热线管理部门指定承办单位"
                     "（designated=true）")
        second = state.status == "退单" and unit in state.returned_units[-1:]
        return replace(state, status="派单", unit=unit, dispatched_at=event.at,
                       second_dispatch=second or bool(d.get("designated")))
    if k == "签收":
        return replace(state, status="签收")
    if k == "退单":
        _require(bool(str(d.get("reason") or "").strip()), "退单须说明理由")
        _require(bool(d.get("evidence")), "退单须提供法律政策依据或证据（evidence）")
        _require(not state.second_dispatch, "二次派单或指定承办的工单，承办单位不得再次退单")
        window = preset.limits.get("return_window")
        if window is not None and state.dispatched_at is not None:
            limit = due(window, state.dispatched_at, cal)
            _require(event.at <= limit.at, f"已超过退单时限（{limit.at:%Y-%m-%d}），视作接收，不能退单")
        assert state.unit is not None
        return replace(state, status="退单", returns=state.returns + 1,
                       returned_units=(*state.returned_units, state.unit))
    if k == "先行联系":
        return replace(state, status="先行联系")
    if k == "延期申请":
        _require(bool(str(d.get("reason") or "").strip()), "延期申请须说明理由")
        return replace(state, status="延期申请", before_extension=state.status)
    if k == "延期审批":
        _require(isinstance(d.get("approved"), bool), "延期审批须写明 approved=true 或 false")
        return replace(state, status=state.before_extension, extension_approved=bool(d["approved"]))
    if k == "办结回复":
        _require(d.get("result") in RESULTS, f"办结结果须为：{'、'.join(RESULTS)}")
        return replace(state, status="办结回复", result=d["result"])
    if k == "审核":
        _require(isinstance(d.get("approved"), bool), "审核须写明 approved=true 或 false")
        return replace(state, status="审核通过" if d["approved"] else "先行联系")
    if k == "回访":
        _require(d.get("satisfaction") in SATISFACTION, f"回访结果须为：{'、'.join(SATISFACTION)}")
        return replace(state, status="回访", satisfaction=d["satisfaction"])
    if k == "结案":
        _require(state.satisfaction != "不满意", "回访不满意的工单须“不满退回”重新办理，不能直接结案")
        return replace(state, status="结案")
    # 不满退回
    _require(state.satisfaction == "不满意", "只有回访不满意的工单才能不满退回")
    return replace(state, status="不满退回", reopened=state.reopened + 1, reopened_at=event.at, result=None,
                   satisfaction=None)


def replay(events: Sequence[Event], preset: Preset, cal: WorkCalendar) -> State:
    state = State()
    for e in events:
        state = apply(state, e, preset, cal)
    return state
