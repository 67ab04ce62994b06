"""Action unit tests (run in .venv-bot): CollectingDispatcher plus a scripted transport standing in for the API.

The real API is exercised end to end in tests/e2e; here each branch of each action is pinned down, including
the API being down or slow, which must never reach the citizen as a raw error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import actions as a
from actions.client import CoreApi, set_api

DOMAIN: dict[str, Any] = {"responses": {"utter_clarify_none": [{"text": "都不是"}],
                                         "utter_clarify_none_human": [{"text": "都不是，转人工"}]}}


def tracker(text: str = "", intent: str = "ask_policy", slots: dict[str, Any] | None = None,
            entities: list[dict[str, Any]] | None = None, active_loop: str | None = None,
            channel: str = "rest") -> Tracker:
    msg = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": entities or []}
    events = [{"event": "user", "text": "你好", "input_channel": channel},
              {"event": "user", "text": text, "parse_data": msg, "input_channel": channel}]
    return Tracker("citizen-1", slots or {}, msg, events, False, None,
                   {"name": active_loop} if active_loop else {}, "action_listen")


class Api:
    """Records requests and answers them from a script: path → (status, json) or an exception."""

    def __init__(self, script: dict[str, Any]) -> None:
        self.script = script
        self.requests: list[tuple[str, str, Any]] = []
        self.headers: list[httpx.Headers] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        self.headers.append(request.headers)
        for prefix, answer in self.script.items():
            if request.url.path.startswith(prefix):
                if isinstance(answer, Exception):
                    raise answer
                status, payload = answer
                return httpx.Response(status, json=payload)
        return httpx.Response(404, json={"detail": "not scripted"})


@pytest.fixture
def api():  # type: ignore[no-untyped-def]
    def install(script: dict[str, Any]) -> Api:
        fake = Api(script)
        set_api(CoreApi("http://api.test", token="t", transport=httpx.MockTransport(fake.handler)))
        return fake

    yield install
    set_api(None)


def run(action: Any, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    d = CollectingDispatcher()
    events = asyncio.run(action.run(d, t, DOMAIN))
    return d.messages, events


def slots(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


HIT = {"entry_id": "MZ001", "version": 2, "question": "低保怎么申请？", "answer": "向户籍所在地街道申请。",
       "policy_basis": "《上海市社会救助办法》", "unit": "区民政局", "score": 0.9}


def test_answer_cites_entry_and_version_and_asks_if_it_helped(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/kb/search": (200, {"decision": "answer", "confidence": 0.9, "results": [HIT]})})
    msgs, events = run(a.ActionAnswerPolicy(), tracker("低保怎么申请", channel="wechat"))
    assert [m["response"] for m in msgs] == ["utter_policy_answer", "utter_ask_helpful"]
    assert msgs[0]["entry_id"] == "MZ001" and msgs[0]["version"] == 2 and "社会救助" in msgs[0]["policy_basis"]
    assert slots(events) == {"last_entry_id": "MZ001", "last_entry_version": 2.0, "last_question": "低保怎么申请",
                             "candidates": None, "context": "answered"}
    assert fake.requests[0][2] == {"query": "低保怎么申请", "top_k": 3, "channel": "wechat"}


def test_answer_inside_a_form_does_not_ask_if_it_helped(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/search": (200, {"decision": "answer", "confidence": 0.9, "results": [HIT]})})
    msgs, events = run(a.ActionAnswerPolicy(), tracker("低保怎么申请", active_loop="complaint_form"))
    assert [m["response"] for m in msgs] == ["utter_policy_answer"]
    assert "context" not in slots(events)


def test_clarify_offers_candidates_as_buttons(api) -> None:  # type: ignore[no-untyped-def]
    other = {**HIT, "entry_id": "MZ002", "question": "低保标准是多少？"}
    api({"/api/v1/kb/search": (200, {"decision": "clarify", "confidence": 0.5, "results": [HIT, other]})})
    msgs, events = run(a.ActionAnswerPolicy(), tracker("低保"))
    buttons = msgs[0]["buttons"]
    assert [b["payload"] for b in buttons] == ['/ask_policy{"entry_id": "MZ001"}', '/ask_policy{"entry_id": "MZ002"}',
                                              "/deny"]
    assert [b["title"] for b in buttons] == ["低保怎么申请？", "低保标准是多少？", "都不是"]
    assert slots(events)["context"] == "clarify"
    assert [c["entry_id"] for c in slots(events)["candidates"]] == ["MZ001", "MZ002"]


def test_clarify_inside_a_form_offers_a_human_instead_of_deny(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/search": (200, {"decision": "clarify", "confidence": 0.5, "results": [HIT]})})
    msgs, events = run(a.ActionAnswerPolicy(), tracker("低保", active_loop="complaint_form"))
    assert msgs[0]["buttons"][-1] == {"title": "都不是，转人工", "payload": "/request_human"}
    assert "context" not in slots(events)


SHOWN = {"candidates": [{**HIT, "entry_id": "GJJ007"}, {**HIT, "entry_id": "GJJ008"}],
         "last_question": "公积金贷款能买车位吗", "context": "clarify"}


def test_none_of_the_candidates_records_a_missing_item_with_what_was_shown(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/kb/missing": (201, {"id": 42, "kind": "missing"})})
    msgs, events = run(a.ActionRecordMissing(), tracker("都不是", intent="deny", slots=SHOWN, channel="wechat"))
    assert fake.requests == [("POST", "/api/v1/kb/missing",
                              {"question": "公积金贷款能买车位吗", "shown": ["GJJ007", "GJJ008"], "channel": "wechat"})]
    assert msgs[0]["response"] == "utter_no_answer" and msgs[0]["gap_id"] == 42
    assert slots(events) == {"candidates": None, "last_entry_id": None, "context": "no_answer"}


def test_none_of_the_candidates_for_a_question_the_office_rejected_promises_nothing(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/missing": (201, {"id": 42, "kind": "missing", "status": "rejected"})})
    msgs, events = run(a.ActionRecordMissing(), tracker("都不是", intent="deny", slots=SHOWN))
    assert msgs[0]["response"] == "utter_no_answer_unrecorded"
    assert slots(events)["context"] == "no_answer"


def test_none_of_the_candidates_refused_by_the_api_still_offers_the_way_on(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/missing": (422, {"detail": "问题太短，无法记录为查无事项（至少4个汉字）"})})
    msgs, events = run(a.ActionRecordMissing(), tracker("都不是", intent="deny", slots={**SHOWN, "last_question": "补贴"}))
    assert msgs[0]["response"] == "utter_no_answer_unrecorded"
    assert slots(events)["context"] == "no_answer"


def test_none_of_the_candidates_with_the_api_down_offers_a_human(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/missing": httpx.ConnectError("refused")})
    msgs, events = run(a.ActionRecordMissing(), tracker("都不是", intent="deny", slots=SHOWN))
    assert msgs[0]["response"] == "utter_api_unavailable"
    assert slots(events)["context"] == "offer_human"


def test_a_chosen_candidate_is_answered_as_offered_without_searching_again(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({})
    offered = [{**HIT, "entry_id": "MZ002", "question": "低保标准是多少？", "answer": "每人每月1510元。"}]
    t = tracker('/ask_policy{"entry_id": "MZ002"}', entities=[{"entity": "entry_id", "value": "MZ002"}],
                slots={"candidates": offered, "last_question": "低保"})
    msgs, events = run(a.ActionAnswerPolicy(), t)
    assert fake.requests == []
    assert msgs[0]["response"] == "utter_policy_answer" and msgs[0]["answer"] == "每人每月1510元。"
    assert slots(events)["last_entry_id"] == "MZ002" and slots(events)["candidates"] is None


def test_no_answer_says_so_and_names_the_gap(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/search": (200, {"decision": "no_answer", "confidence": 0.1, "results": [], "gap_id": 7})})
    msgs, events = run(a.ActionAnswerPolicy(), tracker("火星签证"))
    assert msgs[0]["response"] == "utter_no_answer" and msgs[0]["gap_id"] == 7
    assert slots(events)["context"] == "no_answer" and slots(events)["last_question"] == "火星签证"


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_api_down_or_slow_is_a_polite_message_and_a_handoff_offer(api, failure) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/search": failure})
    msgs, events = run(a.ActionAnswerPolicy(), tracker("低保怎么申请"))
    assert [m["response"] for m in msgs] == ["utter_api_unavailable"]
    assert slots(events) == {"context": "offer_human"}


def test_api_5xx_is_treated_as_down(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/search": (503, {"detail": "x"})})
    msgs, _ = run(a.ActionAnswerPolicy(), tracker("低保怎么申请"))
    assert msgs[0]["response"] == "utter_api_unavailable"


def test_correction_is_filed_against_the_last_answer_with_the_citizens_words(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/kb/corrections": (201, {"id": 12})})
    t = tracker("这个答案过时了，标准早涨了", intent="correct_answer",
                slots={"last_entry_id": "MZ001", "last_entry_version": 2.0, "last_question": "低保标准"})
    msgs, _ = run(a.ActionFileCorrection(), t)
    assert fake.requests[0][2] == {"entry_id": "MZ001", "version": 2, "comment": "这个答案过时了，标准早涨了",
                                   "channel": "web"}
    assert msgs[0]["response"] == "utter_correction_filed" and msgs[0]["gap_id"] == 12


def test_correction_without_an_answer_asks_first(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({})
    msgs, _ = run(a.ActionFileCorrection(), tracker("不对", intent="correct_answer"))
    assert msgs[0]["response"] == "utter_correction_no_answer" and fake.requests == []


def classify(**kw: Any) -> dict[str, Any]:
    base = {"accepted": True, "category": "投诉", "exclusion": None, "reason": "", "rule": "", "advice": "",
            "urgency": "normal", "threat": False, "suggested_units": [], "confidence": 0.9}
    return {**base, **kw}


def test_scope_emergency_comes_first_and_alone(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/intake/classify": (200, classify(accepted=False, exclusion="emergency", urgency="emergency"))})
    msgs, events = run(a.ActionCheckScope(), tracker("楼下着火了烟很大", intent="complain"))
    assert [m["response"] for m in msgs] == ["utter_emergency"]
    assert slots(events)["scope"] == "emergency"


def test_scope_threat_hands_off_with_the_flag(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/intake/classify": (200, classify(threat=True, urgency="urgent")),
                "/api/v1/handoffs": (201, {"id": 3})})
    msgs, events = run(a.ActionCheckScope(), tracker("不解决我就跳楼", intent="complain"))
    assert [m["response"] for m in msgs] == ["utter_threat"]
    assert slots(events)["scope"] == "threat"
    handoff = fake.requests[-1][2]
    assert handoff["threat"] is True and handoff["reason"] == "threat" and handoff["text"] == "不解决我就跳楼"


def test_a_suspected_threat_is_tagged_but_the_citizen_is_not_stopped(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/intake/classify": (200, classify(threat=True, threat_wording=False, urgency="urgent"))})
    msgs, events = run(a.ActionCheckScope(), tracker("实在不行我就带着孩子一起走了", intent="complain"))
    assert [m["response"] for m in msgs] == ["utter_scope_accepted"]
    assert slots(events)["scope"] == "accepted" and slots(events)["intake_tags"] == ["扬言", "紧急"]
    assert [r for r in fake.requests if "handoffs" in r[1]] == []


def test_a_possible_emergency_shows_the_numbers_then_goes_on(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/intake/classify": (200, classify(category="求助", possible_emergency=True, urgency="urgent"))})
    msgs, events = run(a.ActionCheckScope(), tracker("隔壁老太太两天没开门了，敲门也没反应", intent="seek_help"))
    assert [m["response"] for m in msgs] == ["utter_possible_emergency", "utter_scope_accepted"]
    assert slots(events)["scope"] == "accepted" and slots(events)["intake_tags"] == ["紧急"]


def test_scope_excluded_gives_reason_and_channel(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/intake/classify": (200, classify(accepted=False, exclusion="litigation", reason="已进入诉讼程序",
                                                   advice="请向法院咨询", rule="第九条（一）"))})
    msgs, events = run(a.ActionCheckScope(), tracker("法院判决不服我要投诉", intent="complain"))
    assert msgs[0]["response"] == "utter_excluded" and msgs[0]["advice"] == "请向法院咨询"
    assert slots(events)["scope"] == "excluded"


def test_scope_accepted_prefills_description_and_entities(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/intake/classify": (200, classify(category="举报", urgency="urgent"))})
    t = tracker("友谊路100号有人违章搭建", intent="report_violation",
                entities=[{"entity": "address", "value": "友谊路100号"}])
    msgs, events = run(a.ActionCheckScope(), t)
    s = slots(events)
    assert s["scope"] == "accepted" and s["category"] == "举报" and s["description"] == "友谊路100号有人违章搭建"
    assert s["address"] == "友谊路100号" and s["intake_tags"] == ["紧急"] and s["when"] is None
    assert msgs[0]["response"] == "utter_scope_accepted"


def test_scope_check_without_words_leaves_the_description_to_the_form(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({})
    _, events = run(a.ActionCheckScope(), tracker("/complain", intent="complain"))
    assert slots(events)["scope"] == "accepted" and slots(events)["category"] == "投诉"
    assert fake.requests == []


def validate(method: str, value: str, slots_: dict[str, Any] | None = None, intent: str = "inform"):  # type: ignore[no-untyped-def]
    d = CollectingDispatcher()
    form = a.ValidateComplaintForm()
    fn = getattr(form, f"validate_{method}")
    result = fn(value, d, tracker(value, intent=intent, slots=slots_ or {}), DOMAIN)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return result, [m.get("response") for m in d.messages]


@pytest.mark.parametrize("text,expected", [("13812345678", "13812345678"), ("我的电话是 138 1234 5678", "13812345678"),
                                           ("１３９１２３４５６７８", "13912345678"), ("021-12345678", "02112345678")])
def test_phone_accepts_common_spellings(text: str, expected: str) -> None:
    result, msgs = validate("phone", text)
    assert result["phone"] == expected and msgs == []


@pytest.mark.parametrize("text", ["1381234", "不告诉你", "23812345678", "138123456789"])
def test_bad_phone_is_explained(text: str) -> None:
    result, msgs = validate("phone", text)
    assert result["phone"] is None and msgs == ["utter_invalid_phone"]


def test_third_failure_gives_up_gracefully_and_offers_a_human() -> None:
    result, msgs = validate("phone", "不知道", {"form_failures": 2.0})
    assert msgs == ["utter_form_give_up"]
    assert result["requested_slot"] is None and result["context"] == "offer_human" and result["scope"] is None


def test_cancel_words_stop_the_form() -> None:
    result, msgs = validate("address", "算了，取消吧")
    assert msgs == ["utter_order_cancelled"] and result["requested_slot"] is None


@pytest.mark.parametrize("text,ok", [("宝山区友谊路100号", True), ("在通河新村128号楼", True), ("不知道", False), ("这", False)])
def test_address_needs_a_place(text: str, ok: bool) -> None:
    result, msgs = validate("address", text)
    assert (result["address"] is not None) is ok


@pytest.mark.parametrize("text,intent,expected", [("匿名", "deny", "匿名"), ("不留名字了", "deny", "匿名"),
                                                  ("我叫王建国", "inform", "王建国"), ("姓李", "inform", "李")])
def test_name_is_optional(text: str, intent: str, expected: str) -> None:
    result, _ = validate("name", text, intent=intent)
    assert result["name"] == expected


def test_description_typed_in_the_form_is_scope_checked(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/intake/classify": (200, classify(accepted=False, exclusion="emergency", urgency="emergency"))})
    result, msgs = validate("description", "有人掉河里了快救人")
    assert msgs == ["utter_emergency"] and result["requested_slot"] is None and result["scope"] == "emergency"


def test_description_already_checked_is_not_classified_again(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({})
    result, _ = validate("description", "楼下油烟很大", {"checked_text": "楼下油烟很大"})
    assert result["description"] == "楼下油烟很大" and fake.requests == []


ORDER_SLOTS = {"category": "投诉", "description": "楼下饭店油烟大", "address": "友谊路100号", "when": "每天晚上",
               "phone": "13812345678", "name": "匿名", "intake_tags": ["普通"], "scope": "accepted"}


def test_summary_reads_everything_back() -> None:
    msgs, events = run(a.ActionSummarizeOrder(), tracker("匿名", slots=ORDER_SLOTS))
    assert msgs[0]["response"] == "utter_order_summary" and msgs[0]["phone"] == "13812345678"
    assert slots(events) == {"context": "confirm_order"}


def test_summary_is_silent_when_the_form_stopped_early() -> None:
    msgs, _ = run(a.ActionSummarizeOrder(), tracker("x", slots={**ORDER_SLOTS, "scope": None}))
    assert msgs == []


def test_submit_creates_the_order_and_gives_number_and_first_reply_due(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/workorders": (201, {"number": "GD20261123000001", "deadlines": {
        "first_contact": "2026-11-24T17:30:00+08:00", "handling": "2026-11-30T17:30:00+08:00"}})})
    msgs, events = run(a.ActionSubmitOrder(), tracker("确认", intent="affirm", slots=ORDER_SLOTS, channel="wechat"))
    body = fake.requests[0][2]
    assert body["channel"] == "wechat" and body["contact"] == {"name": "", "phone": "13812345678"}
    assert body["content"] == "楼下饭店油烟大\n发生时间：每天晚上" and body["address"] == "友谊路100号"
    assert msgs[0]["number"] == "GD20261123000001" and msgs[0]["first_contact"] == "2026年11月24日 17:30"
    assert slots(events)["order_number"] == "GD20261123000001"
    key = fake.headers[0]["Idempotency-Key"]
    assert key.startswith("citizen-1:")
    run(a.ActionSubmitOrder(), tracker("确认", intent="affirm", slots=ORDER_SLOTS, channel="wechat"))
    assert fake.headers[1]["Idempotency-Key"] == key  # a retry of the same facts carries the same key
    run(a.ActionSubmitOrder(), tracker("确认", intent="affirm", slots={**ORDER_SLOTS, "address": "友谊路102号"},
                                      channel="wechat"))
    assert fake.headers[2]["Idempotency-Key"] != key


def test_second_confirmation_does_not_create_a_second_order(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({})
    msgs, _ = run(a.ActionSubmitOrder(), tracker("确认", intent="affirm",
                                                slots={**ORDER_SLOTS, "order_number": "GD20261123000001"}))
    assert fake.requests == [] and msgs[0]["response"] == "utter_order_already_created"


def test_order_create_timeout_keeps_the_facts_and_asks_to_confirm_again(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/workorders": httpx.ReadTimeout("slow")})
    msgs, events = run(a.ActionSubmitOrder(), tracker("确认", intent="affirm", slots=ORDER_SLOTS))
    assert [m["response"] for m in msgs] == ["utter_order_retry"]
    assert slots(events) == {"context": "confirm_order"}  # no order slot is cleared
    fake.script["/api/v1/workorders"] = (200, {"number": "GD20261123000002", "deadlines": {}})  # stored the first time
    msgs, events = run(a.ActionSubmitOrder(), tracker("确认", intent="affirm", slots=ORDER_SLOTS))
    assert fake.headers[1]["Idempotency-Key"] == fake.headers[0]["Idempotency-Key"]
    assert msgs[0]["response"] == "utter_order_created" and slots(events)["order_number"] == "GD20261123000002"


def test_refused_order_explains_why(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/workorders": (422, {"detail": "联系电话格式不对"})})
    msgs, _ = run(a.ActionSubmitOrder(), tracker("确认", intent="affirm", slots=ORDER_SLOTS))
    assert msgs[0]["response"] == "utter_order_failed" and msgs[0]["reason"] == "联系电话格式不对"


@pytest.mark.parametrize("text,ok", [("GD20261120000031", "GD20261120000031"), ("gd 2026 1120 000031", "GD20261120000031"),
                                     ("工单号是GD20261120000031", "GD20261120000031"), ("12345", None)])
def test_work_order_number_validation(text: str, ok: str | None) -> None:
    d = CollectingDispatcher()
    result = a.ValidateProgressForm().validate_work_order_number(text, d, tracker(text), DOMAIN)
    assert result["work_order_number"] == ok


def test_progress_shows_status_without_pii(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/workorders/": (200, {"number": "GD20261120000031", "status": "签收", "unit": "区城管执法局",
                                               "category": "投诉", "received_at": "2026-11-20T09:00:00+08:00",
                                               "deadlines": {"handling": "2026-11-27T17:30:00+08:00"}, "result": None})})
    t = tracker("5678", slots={"work_order_number": "GD20261120000031", "phone_last4": "5678"})
    msgs, events = run(a.ActionCheckProgress(), t)
    assert fake.requests[0][1] == "/api/v1/workorders/GD20261120000031/progress"
    assert msgs[0]["response"] == "utter_work_order_progress" and msgs[0]["status"] == "签收"
    assert slots(events) == {"work_order_number": None, "phone_last4": None}


def test_progress_mismatch_is_explained(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/workorders/": (404, {"detail": "工单号与电话后四位不匹配，请核对后再试"})})
    t = tracker("0000", slots={"work_order_number": "GD20261120000031", "phone_last4": "0000"})
    msgs, _ = run(a.ActionCheckProgress(), t)
    assert msgs[0]["response"] == "utter_work_order_not_found" and "不匹配" in msgs[0]["reason"]


def test_handoff_records_the_conversation(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/handoffs": (201, {"id": 9})})
    msgs, _ = run(a.ActionHandoff(), tracker("转人工", intent="request_human"))
    assert msgs[0]["response"] == "utter_handoff" and msgs[0]["handoff_id"] == 9
    body = fake.requests[0][2]
    assert body["reason"] == "request" and body["transcript"] == ["你好", "转人工"] and body["sender_id"] == "citizen-1"


def test_handoff_with_the_api_down_points_to_the_phone_line(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/handoffs": httpx.ConnectError("down")})
    msgs, _ = run(a.ActionHandoff(), tracker("转人工", intent="request_human"))
    assert msgs[0]["response"] == "utter_handoff_unavailable"


def fallback_tracker(text: str, ranking: list[tuple[str, float]]) -> Tracker:
    t = tracker(text, intent="nlu_fallback")
    t.latest_message["intent_ranking"] = [{"name": n, "confidence": c} for n, c in ranking]
    return t


def test_fallback_split_between_intake_intents_goes_to_the_scope_check() -> None:
    t = fallback_tracker("小区门口的饭店半夜营业噪音扰民", [("nlu_fallback", 0.75), ("complain", 0.45),
                                                      ("report_violation", 0.42), ("ask_policy", 0.05)])
    msgs, events = run(a.ActionRouteFallback(), t)
    assert msgs == [] and events == [{"event": "followup", "name": "action_check_scope", "timestamp": None}]


def test_real_fallback_says_it_did_not_understand(api) -> None:  # type: ignore[no-untyped-def]
    fake = api({"/api/v1/kb/search": (200, {"decision": "no_answer", "confidence": 0.02, "results": [], "gap_id": None})})
    t = fallback_tracker("嗯啊那个", [("nlu_fallback", 0.75), ("greet", 0.3), ("complain", 0.2), ("thank", 0.2)])
    msgs, events = run(a.ActionRouteFallback(), t)
    assert [m["response"] for m in msgs] == ["utter_default"] and events == []
    assert fake.requests[0][2]["channel"] == "api"  # asked without filing a 查无 item


def test_a_fallback_the_kb_answers_outright_gets_the_cited_answer(api) -> None:  # type: ignore[no-untyped-def]
    """Words the NLU model never saw (二两) that the KB knows: its outright answer, not 没能理解."""
    hit = {"entry_id": "SJ012", "version": 2, "question": "在菜市场、商店购物遇到缺斤少两怎么办？", "answer": "可向市场监管部门投诉。",
           "policy_basis": "《计量法》", "unit": "区市场监管局"}
    api({"/api/v1/kb/search": (200, {"decision": "answer", "confidence": 0.88, "results": [hit], "gap_id": None})})
    t = fallback_tracker("买肉少了二两找谁", [("nlu_fallback", 0.75), ("ask_policy", 0.4), ("complain", 0.2)])
    msgs, events = run(a.ActionRouteFallback(), t)
    assert [m["response"] for m in msgs] == ["utter_policy_answer", "utter_ask_helpful"]
    assert msgs[0]["entry_id"] == "SJ012" and slots(events)["last_entry_id"] == "SJ012"


def test_a_fallback_the_kb_has_candidates_for_offers_them(api) -> None:  # type: ignore[no-untyped-def]
    hits = [{"entry_id": e, "version": 1, "question": q, "answer": "……"} for e, q in
            (("SJ012", "在菜市场、商店购物遇到缺斤少两怎么办？"), ("SJ011", "商家未明码标价或存在价格欺诈行为如何举报？"))]
    api({"/api/v1/kb/search": (200, {"decision": "clarify", "confidence": 0.5, "results": hits, "gap_id": None})})
    t = fallback_tracker("称不准去哪说", [("nlu_fallback", 0.75), ("ask_policy", 0.4)])
    msgs, events = run(a.ActionRouteFallback(), t)
    assert [m["response"] for m in msgs] == ["utter_clarify"]
    assert [b["title"] for b in msgs[0]["buttons"]] == [h["question"] for h in hits] + ["都不是"]
    assert slots(events)["context"] == "clarify" and slots(events)["last_question"] == "称不准去哪说"


def test_a_fallback_with_the_api_down_says_it_did_not_understand(api) -> None:  # type: ignore[no-untyped-def]
    api({"/api/v1/kb/search": httpx.ConnectError("down")})
    t = fallback_tracker("那个那个肉", [("nlu_fallback", 0.75), ("ask_policy", 0.4)])
    msgs, events = run(a.ActionRouteFallback(), t)
    assert [m["response"] for m in msgs] == ["utter_default"] and events == []
