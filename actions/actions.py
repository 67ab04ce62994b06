"""Rasa custom actions: thin glue between the conversation and the core API.

The API decides (search decision, scope, time limits, numbers); actions only carry words across and pick
which response of bot/domain.yml to show. Every API call may fail: the citizen then gets a polite message and
a handoff offer, never a raw error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from datetime import datetime
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.client import ApiRefused, ApiUnavailable, api

logger = logging.getLogger(__name__)

INTENT_CATEGORY = {"complain": "投诉", "seek_help": "求助", "report_violation": "举报", "suggest": "建议"}
PHONE = re.compile(r"(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})")
ORDER_NUMBER = re.compile(r"GD\d{14}")
PLACE_HINT = re.compile(r"[路街弄号村镇区园苑里坊楼门口站桥巷道场湾城院店小区广场公园]")
CANCEL_WORDS = ("取消", "算了", "不登记了", "不办了", "不用登记", "不投诉了")
ANONYMOUS_WORDS = ("匿名", "不留", "不想留", "不方便", "不用了", "不告诉", "保密")
UNKNOWN_TIME_WORDS = ("不记得", "记不清", "忘了", "不清楚", "不知道")
MAX_FAILURES = 3
# The FallbackClassifier threshold of config.yml (chosen on the held-out file), applied to the intake intents' sum.
INTAKE_THRESHOLD = 0.75
# What a 咨询 order (from 查无) records for the place and time it does not have.
CONSULT_ADDRESS, CONSULT_WHEN = "（咨询事项，无具体地点）", "（咨询事项）"
ORDER_SLOTS = ("description", "address", "when", "phone", "name", "category", "intake_tags", "checked_text")


def normalize(text: str) -> str:
    """Full-width digits and letters to half width, as citizens type them on phones."""
    return unicodedata.normalize("NFKC", text or "").strip()


def channel_of(tracker: Tracker) -> str:
    return "wechat" if tracker.get_latest_input_channel() == "wechat" else "web"


def user_text(tracker: Tracker) -> str:
    """The citizen's words; a button payload (/intent) carries none."""
    text = (tracker.latest_message.get("text") or "").strip()
    return "" if text.startswith("/") else text


def fmt_time(iso: str | None) -> str:
    if not iso:
        return "（待定）"
    dt = datetime.fromisoformat(iso)
    return f"{dt.year}年{dt.month}月{dt.day}日 {dt:%H:%M}"


def recent_user_texts(tracker: Tracker, n: int = 10) -> list[str]:
    texts = [e.get("text") or "" for e in tracker.events if e.get("event") == "user"]
    return [t for t in texts if t][-n:]


class ActionAnswerPolicy(Action):
    def name(self) -> str:
        return "action_answer_policy"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        in_form = tracker.active_loop_name is not None
        chosen = next((e["value"] for e in tracker.latest_message.get("entities") or []
                       if e.get("entity") == "entry_id"), None)
        offered = {c["entry_id"]: c for c in tracker.get_slot("candidates") or []}
        if chosen in offered:  # a clarify button: answer exactly the candidate that was shown
            return self._answer(offered[chosen], tracker.get_slot("last_question") or "", in_form, dispatcher)
        query = user_text(tracker)
        if not query:
            dispatcher.utter_message(response="utter_ask_policy_question")
            return []
        try:
            res = await api().search(query, channel_of(tracker))
        except (ApiUnavailable, ApiRefused) as e:
            logger.warning("search failed: %s", e)
            dispatcher.utter_message(response="utter_api_unavailable")
            return [] if in_form else [SlotSet("context", "offer_human")]
        results = res.get("results") or []
        if res["decision"] == "answer" and results:
            return self._answer(results[0], query, in_form, dispatcher)
        if res["decision"] == "clarify" and results:
            return self._offer(results, query, in_form, dispatcher, domain)
        gap_id = res.get("gap_id")
        if gap_id:
            dispatcher.utter_message(response="utter_no_answer", gap_id=gap_id)
        else:
            dispatcher.utter_message(response="utter_no_answer_unrecorded")
        return [SlotSet("last_question", query), SlotSet("last_entry_id", None)] + (
            [] if in_form else [SlotSet("context", "no_answer")])

    @staticmethod
    def _offer(results: list[dict[str, Any]], query: str, in_form: bool, dispatcher: CollectingDispatcher,
               domain: DomainDict) -> list[EventType]:
        """The candidates as buttons, and 都不是: it records a 查无 item; mid-form it hands over instead, so the form's
        own questions stay in charge."""
        none_response, none_payload = (("utter_clarify_none_human", "/request_human") if in_form
                                       else ("utter_clarify_none", "/deny"))
        none_title = domain.get("responses", {}).get(none_response, [{}])[0].get("text", "都不是")
        offer = results[:3]
        buttons = [{"title": r["question"], "payload": "/ask_policy" + json.dumps({"entry_id": r["entry_id"]})}
                   for r in offer]
        buttons.append({"title": none_title, "payload": none_payload})
        dispatcher.utter_message(response="utter_clarify", buttons=buttons)
        keep = [{k: r.get(k) for k in ("entry_id", "version", "question", "answer", "policy_basis", "unit")}
                for r in offer]
        return [SlotSet("last_question", query), SlotSet("candidates", keep)] + (
            [] if in_form else [SlotSet("context", "clarify")])

    @staticmethod
    def _answer(top: dict[str, Any], query: str, in_form: bool, dispatcher: CollectingDispatcher) -> list[EventType]:
        dispatcher.utter_message(response="utter_policy_answer", answer=top["answer"],
                                 policy_basis=top.get("policy_basis") or "（无）", entry_id=top["entry_id"],
                                 version=top["version"], unit=top.get("unit") or "")
        events: list[EventType] = [SlotSet("last_entry_id", top["entry_id"]),
                                   SlotSet("last_entry_version", float(top["version"])),
                                   SlotSet("last_question", query or top.get("question")),
                                   SlotSet("candidates", None)]
        if not in_form:  # mid-form the form's own question follows instead
            dispatcher.utter_message(response="utter_ask_helpful")
            events.append(SlotSet("context", "answered"))
        return events


class ActionRecordMissing(Action):
    """None of the candidates was it: the question becomes a 查无 item, as a no_answer would have."""

    def name(self) -> str:
        return "action_record_missing"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        question = tracker.get_slot("last_question") or ""
        shown = [c["entry_id"] for c in tracker.get_slot("candidates") or [] if c.get("entry_id")]
        done: list[EventType] = [SlotSet("candidates", None), SlotSet("last_entry_id", None)]
        try:
            gap = await api().missing(question, shown, channel_of(tracker))
        except ApiUnavailable as e:
            logger.warning("missing item failed: %s", e)
            dispatcher.utter_message(response="utter_api_unavailable")
            return [*done, SlotSet("context", "offer_human")]
        except ApiRefused as e:  # too short to be a knowledge gap: the same offers, nothing recorded
            logger.info("missing item not recorded: %s", e)
            dispatcher.utter_message(response="utter_no_answer_unrecorded")
            return [*done, SlotSet("context", "no_answer")]
        if gap.get("status", "open") != "open":  # the office rejected this question before: no answer is coming
            dispatcher.utter_message(response="utter_no_answer_unrecorded")
        else:
            dispatcher.utter_message(response="utter_no_answer", gap_id=gap["id"])
        return [*done, SlotSet("context", "no_answer")]


class ActionFileCorrection(Action):
    def name(self) -> str:
        return "action_file_correction"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        entry_id = tracker.get_slot("last_entry_id")
        if not entry_id:
            dispatcher.utter_message(response="utter_correction_no_answer")
            return []
        version = int(tracker.get_slot("last_entry_version") or 0) or None
        comment = user_text(tracker) or "（市民选择了“答案不对或已过时”，未说明原因）"
        try:
            gap = await api().correction(entry_id, version, comment, channel_of(tracker))  # type: ignore[arg-type]
        except (ApiUnavailable, ApiRefused) as e:
            logger.warning("correction failed: %s", e)
            dispatcher.utter_message(response="utter_api_unavailable")
            return [SlotSet("context", "offer_human")]
        dispatcher.utter_message(response="utter_correction_filed", gap_id=gap["id"], entry_id=entry_id,
                                 version=version, question=tracker.get_slot("last_question") or "")
        return [SlotSet("context", None)]


def _handoff(tracker: Tracker, threat: bool, text: str) -> Any:
    """The handoff request, with the recent transcript so the operator does not ask again."""
    return api().handoff({"sender_id": tracker.sender_id, "channel": channel_of(tracker),
                          "reason": "threat" if threat else "request", "threat": threat, "text": text,
                          "transcript": recent_user_texts(tracker)})


async def _decide_scope(result: dict[str, Any], text: str, dispatcher: CollectingDispatcher,
                        tracker: Tracker) -> list[EventType]:
    """Emergency first, then threat wording, then exclusion; what remains is accepted (no events).

    Threat wording also goes to the operators' queue, flagged, whatever else was decided. A threat or an
    emergency that only the intake's safety models suspect does not stop the citizen: the emergency numbers
    are shown and the order is tagged (see `_tags`)."""
    events: list[EventType] = []
    threat_wording = result.get("threat_wording", result.get("threat"))
    if result.get("exclusion") == "emergency" or result.get("urgency") == "emergency":
        dispatcher.utter_message(response="utter_emergency")
        events = [SlotSet("scope", "emergency")]
    elif threat_wording:
        dispatcher.utter_message(response="utter_threat")
        events = [SlotSet("scope", "threat")]
    elif not result.get("accepted"):
        dispatcher.utter_message(response="utter_excluded", reason=result.get("reason") or "",
                                 advice=result.get("advice") or "", rule=result.get("rule") or "")
        events = [SlotSet("scope", "excluded")]
    elif result.get("possible_emergency"):
        dispatcher.utter_message(response="utter_possible_emergency")
    if events and threat_wording:
        try:
            await _handoff(tracker, True, text)
        except (ApiUnavailable, ApiRefused) as e:  # the words were already answered; log loudly for the office
            logger.error("threat handoff could not be recorded for %s: %s", tracker.sender_id, e)
    return events


def _tags(result: dict[str, Any], otherwise: list[str]) -> list[str]:
    """Work-order tags from the scope check: 扬言 for threat wording or a suspected threat, 紧急 when urgent."""
    tags = [t for t, on in (("扬言", result.get("threat")), ("紧急", result.get("urgency") == "urgent")) if on]
    return tags or otherwise


class ActionCheckScope(Action):
    """Scope check (受理范围) of a complaint / help / report / suggestion before any form opens."""

    def name(self) -> str:
        return "action_check_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        text = user_text(tracker)
        entities = {e["entity"]: e["value"] for e in tracker.latest_message.get("entities") or []}
        fresh: list[EventType] = [SlotSet(s, None) for s in ORDER_SLOTS] + [
            SlotSet("form_failures", 0.0), SlotSet("context", None), SlotSet("order_number", None),
            SlotSet("address", entities.get("address")), SlotSet("when", entities.get("time")),
            SlotSet("phone", (m.group(1) if (m := PHONE.search(normalize(text))) else None))]
        category = INTENT_CATEGORY.get(intent or "", "投诉")
        if len(text) < 6:  # a button or a bare "我要投诉": the description, asked by the form, is checked then
            dispatcher.utter_message(response="utter_scope_accepted", category=category)
            return [*fresh, SlotSet("category", category), SlotSet("scope", "accepted")]
        try:
            result = await api().classify(text)
        except (ApiUnavailable, ApiRefused) as e:
            logger.warning("classify failed: %s", e)
            dispatcher.utter_message(response="utter_api_unavailable")
            return [*fresh, SlotSet("scope", "unavailable"), SlotSet("context", "offer_human")]
        decided = await _decide_scope(result, text, dispatcher, tracker)
        if decided:
            return [*fresh, *decided]
        category = result.get("category") or category
        tags = _tags(result, ["普通"])
        dispatcher.utter_message(response="utter_scope_accepted", category=category)
        return [*fresh, SlotSet("category", category), SlotSet("description", text), SlotSet("checked_text", text),
                SlotSet("intake_tags", tags), SlotSet("scope", "accepted")]


class ActionStartConsultation(Action):
    """查无 → the citizen wants a 咨询 work order: the question is the content, only contact details are asked."""

    def name(self) -> str:
        return "action_start_consultation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        question = tracker.get_slot("last_question") or ""
        dispatcher.utter_message(response="utter_scope_accepted", category="咨询")
        return [SlotSet(s, None) for s in ORDER_SLOTS] + [
            SlotSet("category", "咨询"), SlotSet("description", question), SlotSet("checked_text", question),
            SlotSet("address", CONSULT_ADDRESS), SlotSet("when", CONSULT_WHEN),
            SlotSet("intake_tags", ["咨询"]), SlotSet("form_failures", 0.0), SlotSet("scope", "accepted"),
            SlotSet("context", None), SlotSet("order_number", None)]


def _fail(slot: str, response: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
    """One more failed answer; at the third the form stops and offers a human instead of looping."""
    failures = int(tracker.get_slot("form_failures") or 0) + 1
    if failures >= MAX_FAILURES:
        dispatcher.utter_message(response="utter_form_give_up")
        return {slot: None, "form_failures": 0.0, "requested_slot": None, "scope": None, "context": "offer_human"}
    dispatcher.utter_message(response=response)
    return {slot: None, "form_failures": float(failures)}


def _cancelled(text: str, dispatcher: CollectingDispatcher, slot: str) -> dict[str, Any] | None:
    if any(w in text for w in CANCEL_WORDS) and len(text) <= 12:
        dispatcher.utter_message(response="utter_order_cancelled")
        return {slot: None, "requested_slot": None, "scope": None, "form_failures": 0.0}
    return None


class ValidateComplaintForm(FormValidationAction):
    def name(self) -> str:
        return "validate_complaint_form"

    async def validate_description(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: DomainDict) -> dict[str, Any]:
        text = normalize(str(value or ""))
        if (stop := _cancelled(text, dispatcher, "description")) is not None:
            return stop
        if len(text) < 5 or text.startswith("/"):
            return _fail("description", "utter_invalid_description", dispatcher, tracker)
        text = str(value).strip()  # keep the citizen's own words and punctuation in the order
        if text == tracker.get_slot("checked_text"):
            return {"description": text, "form_failures": 0.0}
        try:
            result = await api().classify(text)
        except (ApiUnavailable, ApiRefused) as e:  # the office re-checks scope anyway; do not lose the citizen
            logger.warning("classify failed in form: %s", e)
            return {"description": text, "checked_text": text, "form_failures": 0.0}
        decided = await _decide_scope(result, text, dispatcher, tracker)
        if decided:
            return {"description": None, "requested_slot": None, **{e["name"]: e["value"] for e in decided}}
        tags = _tags(result, tracker.get_slot("intake_tags") or ["普通"])
        return {"description": text, "checked_text": text, "form_failures": 0.0, "intake_tags": tags,
                "category": tracker.get_slot("category") or result.get("category") or "投诉"}

    def validate_address(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> dict[str, Any]:
        if value == CONSULT_ADDRESS:  # compared before NFKC, which would turn its full-width brackets half-width
            return {"address": value}
        text = normalize(str(value or ""))
        if (stop := _cancelled(text, dispatcher, "address")) is not None:
            return stop
        text = re.sub(r"^(在|就在|地址是|地点是|位置在)", "", text)
        if len(text) >= 3 and PLACE_HINT.search(text) and "不知道" not in text:
            return {"address": text[:200], "form_failures": 0.0}
        return _fail("address", "utter_invalid_address", dispatcher, tracker)

    def validate_when(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> dict[str, Any]:
        text = normalize(str(value or ""))
        if (stop := _cancelled(text, dispatcher, "when")) is not None:
            return stop
        if any(w in text for w in UNKNOWN_TIME_WORDS):
            return {"when": "不详", "form_failures": 0.0}
        if len(text) >= 2 and not text.startswith("/"):
            return {"when": text[:100], "form_failures": 0.0}
        return _fail("when", "utter_invalid_when", dispatcher, tracker)

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        text = normalize(str(value or ""))
        if (stop := _cancelled(text, dispatcher, "phone")) is not None:
            return stop
        compact = re.sub(r"[\s\-—－]", "", text)
        m = PHONE.search(compact) or PHONE.search(text)
        if m and not re.search(r"\d", compact[m.end():m.end() + 1] or ""):
            return {"phone": m.group(1), "form_failures": 0.0}
        return _fail("phone", "utter_invalid_phone", dispatcher, tracker)

    def validate_name(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                      domain: DomainDict) -> dict[str, Any]:
        text = normalize(str(value or ""))
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        if intent == "deny" or any(w in text for w in ANONYMOUS_WORDS) or text.startswith("/"):
            return {"name": "匿名", "form_failures": 0.0}
        text = re.sub(r"^(我叫|我是|叫我|我姓|姓|免贵姓)", "", text).strip("。，, ")
        return {"name": text[:20] or "匿名", "form_failures": 0.0}


class ActionSummarizeOrder(Action):
    """After the form: read everything back and ask for confirmation (unless the form stopped early)."""

    def name(self) -> str:
        return "action_summarize_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        slots = {s: tracker.get_slot(s) for s in ("category", "description", "address", "when", "phone", "name")}
        if tracker.get_slot("scope") != "accepted" or not all(slots.values()):
            return [SlotSet("scope", None)]
        dispatcher.utter_message(response="utter_order_summary", **slots)
        return [SlotSet("context", "confirm_order")]


class ActionSubmitOrder(Action):
    def name(self) -> str:
        return "action_submit_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if tracker.get_slot("order_number"):  # a repeated confirmation must not make a second order
            dispatcher.utter_message(response="utter_order_already_created", number=tracker.get_slot("order_number"))
            return [SlotSet("context", None)]
        name = tracker.get_slot("name") or ""
        when = tracker.get_slot("when") or ""
        body = {
            "channel": channel_of(tracker), "category": tracker.get_slot("category") or "投诉",
            "content": (tracker.get_slot("description") or "") + (f"\n发生时间：{when}" if when else ""),
            "address": tracker.get_slot("address") or "",
            "contact": {"name": "" if name == "匿名" else name, "phone": tracker.get_slot("phone") or ""},
            "tags": tracker.get_slot("intake_tags") or ["普通"],
        }
        # The same conversation confirming the same facts again (after a timeout whose order was stored
        # anyway, or on a second channel delivery) gets the first order back from the API.
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]
        try:
            order = await api().create_order(body, idempotency_key=f"{tracker.sender_id}:{digest}")
        except ApiRefused as e:
            dispatcher.utter_message(response="utter_order_failed", reason=e.message)
            return [SlotSet("context", "offer_human")]
        except ApiUnavailable as e:
            # Everything the citizen told us is still in the slots, and the idempotency key makes a second
            # confirmation return the order if this one was stored after all: offer to try again.
            logger.warning("create order failed: %s", e)
            dispatcher.utter_message(response="utter_order_retry")
            return [SlotSet("context", "confirm_order")]
        due = order.get("deadlines") or {}
        dispatcher.utter_message(response="utter_order_created", number=order["number"],
                                 first_contact=fmt_time(due.get("first_contact")),
                                 handling=fmt_time(due.get("handling")))
        return [SlotSet("order_number", order["number"]), SlotSet("context", None), SlotSet("scope", None)]


class ActionCancelOrder(Action):
    def name(self) -> str:
        return "action_cancel_order"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_order_cancelled")
        return [SlotSet(s, None) for s in ORDER_SLOTS] + [SlotSet("context", None), SlotSet("scope", None)]


class ValidateProgressForm(FormValidationAction):
    def name(self) -> str:
        return "validate_progress_form"

    def validate_work_order_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                   domain: DomainDict) -> dict[str, Any]:
        text = re.sub(r"\s", "", normalize(str(value or ""))).upper()
        m = ORDER_NUMBER.search(text)
        if m:
            return {"work_order_number": m.group(0), "form_failures": 0.0}
        return _fail("work_order_number", "utter_invalid_work_order_number", dispatcher, tracker)

    def validate_phone_last4(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> dict[str, Any]:
        digits = re.sub(r"\D", "", normalize(str(value or "")))
        if len(digits) == 4 or len(digits) == 11:  # a whole phone number is fine too: keep its tail
            return {"phone_last4": digits[-4:], "form_failures": 0.0}
        return _fail("phone_last4", "utter_invalid_phone_last4", dispatcher, tracker)


class ActionCheckProgress(Action):
    def name(self) -> str:
        return "action_check_progress"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        number, last4 = tracker.get_slot("work_order_number"), tracker.get_slot("phone_last4")
        reset: list[EventType] = [SlotSet("work_order_number", None), SlotSet("phone_last4", None)]
        if not (number and last4):
            return reset
        try:
            p = await api().progress(number, last4)
        except ApiRefused as e:
            dispatcher.utter_message(response="utter_work_order_not_found", reason=e.message)
            return reset
        except ApiUnavailable as e:
            logger.warning("progress failed: %s", e)
            dispatcher.utter_message(response="utter_api_unavailable")
            return [*reset, SlotSet("context", "offer_human")]
        due = p.get("deadlines") or {}
        result = f"\n办理结果：{p['result']}" if p.get("result") else ""
        dispatcher.utter_message(response="utter_work_order_progress", number=p["number"], category=p["category"],
                                 status=p["status"], unit=p.get("unit") or "待派单",
                                 received_at=fmt_time(p.get("received_at")), handling=fmt_time(due.get("handling")),
                                 result=result)
        return reset


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        threat = tracker.get_slot("scope") == "threat"
        try:
            h = await _handoff(tracker, threat, user_text(tracker))
        except (ApiUnavailable, ApiRefused) as e:
            logger.warning("handoff failed: %s", e)
            dispatcher.utter_message(response="utter_handoff_unavailable")
            return [SlotSet("context", None)]
        dispatcher.utter_message(response="utter_handoff", handoff_id=h["id"])
        return [SlotSet("context", None)]


class ActionRouteFallback(Action):
    """Low NLU confidence. Complaint, help, report and suggestion often split the confidence between them
    ("饭店半夜营业噪音扰民" is both a complaint and a report), yet they share one path: the scope check, where the
    API's classifier names the category. So when those four together pass the threshold, go that way. Otherwise the
    KB may still know the question in words the NLU model never saw (买肉少了二两找谁): its outright answer is given
    with the citation, its candidates are offered as for a policy question. When the KB has nothing either we say we
    did not understand, and nothing is recorded (channel "api": 嗯啊那个 is not a 查无 item)."""

    def name(self) -> str:
        return "action_route_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ranking = tracker.latest_message.get("intent_ranking") or []
        intake = sum(r.get("confidence") or 0.0 for r in ranking if r.get("name") in INTENT_CATEGORY)
        text = user_text(tracker)
        if intake >= INTAKE_THRESHOLD and text:
            return [FollowupAction("action_check_scope")]
        if text:
            try:
                res = await api().search(text, "api")
            except (ApiUnavailable, ApiRefused) as e:
                logger.warning("search after a fallback failed: %s", e)
                res = {}
            results, in_form = res.get("results") or [], tracker.active_loop_name is not None
            if res.get("decision") == "answer" and results:
                return ActionAnswerPolicy._answer(results[0], text, in_form, dispatcher)
            if res.get("decision") == "clarify" and results:
                return ActionAnswerPolicy._offer(results, text, in_form, dispatcher, domain)
        dispatcher.utter_message(response="utter_default")
        return []


class ActionResetContext(Action):
    def name(self) -> str:
        return "action_reset_context"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return [SlotSet("context", None)]
