"""Reply drafts from the templates of seed 004: 附件2 (信访答复) and 附件3 (12345 办结报告).

Facts the order already holds are filled in; facts only the handling unit knows stay as bracketed prompts,
so a draft never states something nobody checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

TRUTH = {"实际解决": "属实", "解释说明": "部分属实", "参考备案": "部分属实", "不属实": "不属实", "诉求过高": "属实"}


@dataclass
class ReplyFacts:
    caller: str
    content: str
    category: str
    unit: str
    contacted_at: datetime | None = None
    result: str | None = None
    findings: str = ""
    policy: str = ""
    measures: list[str] = field(default_factory=list)
    accepted: bool | None = None
    requests: str = ""
    reasons: str = ""
    superior: str = ""
    today: date | None = None


def _or(value: str, prompt: str) -> str:
    return value.strip() or f"[{prompt}]"


def hotline_report(f: ReplyFacts) -> str:
    """附件3: 求助/投诉 use template 一, 咨询/建议 template 二."""
    when = f"{f.contacted_at:%-m月%-d日%H}时左右" if f.contacted_at else "[X月X日XX时左右]"
    caller = f.caller or "来电人"
    accepted = {True: "接受", False: "不接受", None: "[接受/不接受]"}[f.accepted]
    if f.category in ("求助", "投诉", "举报"):
        truth = TRUTH.get(f.result or "", "[属实/部分属实/不属实]")
        measures = "；".join(f"{i}. {m}" for i, m in enumerate(f.measures, 1)) or "[1. …；2. …]"
        return (f"{when}，{f.unit}工作人员与来电人{caller}进行了电话沟通。经{_or(f.findings, '核实单位或系统')}核实，"
                f"来电人{caller}反映的情况{truth}。针对反映的情况，答复如下：{measures}。"
                f"依据：{_or(f.policy, '所用政策依据')}。来电人{caller}表示{accepted}。")
    return (f"{when}，{f.unit}工作人员与来电人{caller}进行了电话沟通。经核实，来电人{caller}的情况如下："
            f"{_or(f.findings, '来电人实际情况')}。根据{_or(f.policy, '政策、通知或实施意见')}，"
            f"来电人{caller}的诉求{'符合' if f.result == '实际解决' else '[符合/不符合]'}规定及具体要求，"
            f"与来电人进行了沟通解释，来电人{caller}表示{accepted}。")


def xinfang_reply(f: ReplyFacts) -> str:
    """附件2: 信访答复."""
    day = f.today or date.today()
    return "\n\n".join([
        f"{f.caller or 'XX'}：",
        "您反映的信访事项已受理。经研究，现答复如下：",
        f"您反映{f.content}。您认为，{_or(f.reasons, '信访人的理由')}。\n您要求{_or(f.requests, '信访人的具体请求')}。",
        f"经查，{_or(f.findings, '处理机关查明的情况')}。",
        f"本机关认为，{_or(f.policy, '信访事项适用的法律、法规、规章或政策')}。",
        f"根据以上规定，{_or('', '对信访人的请求是否支持的判断')}。",
        f"如不服本意见，您可自收到本处理意见之日起 30 日内向{_or(f.superior, '上一级行政机关')}提出复查申请。"
        "如逾期不提出复查申请，本意见即为最终意见。",
        f"{f.unit}\n\n{day.year}年{day.month}月{day.day}日",
    ])
