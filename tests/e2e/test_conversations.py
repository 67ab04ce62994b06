"""Scripted conversations through the real REST and WeChat channels, checked against what the API stored."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

from tests.e2e.conftest import Client


def orders_with(client: Client, needle: str) -> list[dict[str, Any]]:
    return [o for o in client.get("/api/v1/workorders", limit=500) if needle in o["content"]]


def fill_form(client: Client, sender: str, answers: list[str]) -> str:
    """Answer the form's questions in order; returns the bot's last reply (the read-back)."""
    last = ""
    for a in answers:
        last = client.text(sender, a)
    return last


# -- policy questions ---------------------------------------------------------------------------------

def test_policy_question_gets_an_answer_with_its_policy_basis_and_version(client: Client, sender: str) -> None:
    reply = client.text(sender, "低保怎么申请")
    assert "政策依据" in reply and re.search(r"知识库 [A-Z]+\d+ 第\d+版", reply), reply
    assert "有帮助吗" in reply
    assert "很高兴" in client.text(sender, "有帮助")


def test_words_the_nlu_model_never_saw_still_get_the_kb_answer(client: Client, sender: str) -> None:
    """买肉少了二两找谁: NLU falls back (or guesses ask_policy); either way the KB's outright answer comes back cited."""
    reply = client.text(sender, "买肉少了二两找谁")
    assert "知识库 SJ012" in reply and "政策依据" in reply, reply


def test_ambiguous_question_offers_candidates_and_a_choice_answers(client: Client, sender: str) -> None:
    [message] = client.say(sender, "公积金怎么提取")
    assert "哪一个" in message["text"] and len(message["buttons"]) >= 3, message
    first = message["buttons"][0]
    assert "公积金" in first["title"] and message["buttons"][-1] == {"title": "都不是", "payload": "/deny"}
    reply = client.text(sender, first["payload"])
    assert "政策依据" in reply and "GJJ" in reply, reply


def test_none_of_the_candidates_is_recorded_for_the_unit_that_owns_them(client: Client, sender: str) -> None:
    [message] = client.say(sender, "公积金怎么提取")
    shown = [b["payload"] for b in message["buttons"][:-1]]
    [answer] = client.say(sender, message["buttons"][-1]["payload"])  # 都不是
    reply = answer["text"]
    assert "查无编号" in reply and "登记咨询工单" in [b["title"] for b in answer["buttons"]], answer
    assert "好的" in client.text(sender, "不用了")
    gap_id = int(re.search(r"查无编号 (\d+)", reply).group(1))  # type: ignore[union-attr]
    body = client.get(f"/api/v1/kb/gaps/{gap_id}")
    assert body["gap"]["kind"] == "missing" and body["gap"]["unit"] == "区住房公积金管理中心", body
    assert body["gap"]["question"] == "公积金怎么提取"
    report = body["reports"][-1]["text"]
    assert "都不是" in report and all(re.search(r'"(GJJ\d+)"', p).group(1) in report for p in shown), report  # type: ignore[union-attr]


def test_unanswerable_question_is_said_honestly_and_recorded_as_a_gap(client: Client, sender: str) -> None:
    reply = client.text(sender, "导游证怎么考")
    assert "暂时没有" in reply and "查无编号" in reply, reply
    gap_id = int(re.search(r"查无编号 (\d+)", reply).group(1))  # type: ignore[union-attr]
    gap = client.get(f"/api/v1/kb/gaps/{gap_id}")["gap"]
    assert gap["kind"] == "missing" and gap["channel"] == "web"


def test_wrong_answer_becomes_a_correction_against_that_version(client: Client, sender: str) -> None:
    reply = client.text(sender, "退休手续在哪里办")
    entry_id, version = re.search(r"知识库 ([A-Z]+\d+) 第(\d+)版", reply).groups()  # type: ignore[union-attr]
    reply = client.text(sender, "这个答案不对，已经过时了，材料早就改了")
    assert "纠错编号" in reply and "2个工作日" in reply, reply
    gap_id = int(re.search(r"纠错编号 (\d+)", reply).group(1))  # type: ignore[union-attr]
    gap = client.get(f"/api/v1/kb/gaps/{gap_id}")["gap"]
    assert gap["kind"] == "correction" and gap["entry_id"] == entry_id and gap["entry_version"] == int(version)
    assert "过时" in gap["comment"]


def test_no_answer_then_a_consultation_work_order(client: Client, sender: str) -> None:
    question = f"导游证怎么考（{uuid.uuid4().hex[:6]}）"
    assert "登记咨询工单" in str(client.say(sender, question))
    assert "联系电话" in client.text(sender, "好的")
    client.text(sender, "13812340001")
    reply = client.text(sender, "匿名")
    assert "确认提交" in reply and "咨询" in reply, reply
    reply = client.text(sender, "确认")
    assert "GD" in reply
    [order] = orders_with(client, question)
    assert order["category"] == "咨询" and "咨询" in order["tags"]


# -- intake ------------------------------------------------------------------------------------------

def test_complaint_form_creates_a_work_order_with_number_and_first_reply_due(client: Client, sender: str) -> None:
    marker = uuid.uuid4().hex[:6]
    reply = client.text(sender, f"我家楼下烧烤店油烟太大了，天天熏得开不了窗 {marker}")
    assert "受理范围" in reply and "具体地址" in reply, reply
    summary = fill_form(client, sender, ["友谊路100号", "上周开始每天晚上", "13812345678", "匿名"])
    assert "友谊路100号" in summary and "13812345678" in summary and "确认提交" in summary, summary
    reply = client.text(sender, "确认")
    number = re.search(r"GD\d{14}", reply).group(0)  # type: ignore[union-attr]
    assert "前与您联系" in reply and "年" in reply, reply
    [order] = orders_with(client, marker)
    assert order["number"] == number and order["address"] == "友谊路100号" and order["channel"] == "web"
    assert order["contact"]["phone"] == "13812345678" and order["status"] == "受理"
    assert order["deadlines"]["first_contact"]


def test_emergency_is_told_to_call_now_and_nothing_is_filed(client: Client, sender: str) -> None:
    marker = uuid.uuid4().hex[:6]
    reply = client.text(sender, f"楼下着火了，烟很大，有人被困在里面 {marker}")
    assert "119" in reply and "110" in reply, reply
    assert orders_with(client, marker) == []


def test_excluded_scope_gives_reason_and_the_right_channel(client: Client, sender: str) -> None:
    reply = client.text(sender, "法院已经判决了，我对判决结果不服，要投诉这个判决")
    assert "不在12345热线的受理范围" in reply and "建议" in reply, reply


def test_threat_wording_hands_off_and_is_flagged(client: Client, sender: str) -> None:
    reply = client.text(sender, "拖欠我工资半年了，再不解决我就从公司楼顶跳下去")
    assert "人工" in reply, reply
    flagged = client.get("/api/v1/handoffs", threat=True, sender_id=sender)
    assert flagged and flagged[0]["reason"] == "threat"


def test_policy_question_in_the_middle_of_the_form_then_the_form_resumes(client: Client, sender: str) -> None:
    client.text(sender, "小区门口的饭店半夜还在营业，噪音扰民，我要投诉")
    reply = client.text(sender, "居住证怎么申请")
    assert "政策依据" in reply and "具体地址" in reply, reply  # answered, then asked again where
    summary = fill_form(client, sender, ["呼兰路50号", "昨天晚上", "13812340000", "匿名"])
    assert "确认提交" in summary and "呼兰路50号" in summary


def test_human_on_request_in_the_middle_of_the_form(client: Client, sender: str) -> None:
    client.text(sender, "我要投诉物业，电梯坏了一个月都不修")
    reply = client.text(sender, "转人工")
    assert "人工" in reply and "排队编号" in reply, reply
    waiting = client.get("/api/v1/handoffs", sender_id=sender)
    assert waiting and waiting[0]["reason"] == "request" and any("电梯" in t for t in waiting[0]["transcript"])
    assert "受理范围" not in client.text(sender, "你好")  # the form is closed


def test_invalid_phone_three_times_gives_up_gracefully(client: Client, sender: str) -> None:
    client.text(sender, "我家下水道堵了好几天，物业一直不来修，想求助")
    fill_form(client, sender, ["通河新村128号楼", "前天"])
    assert "格式不对" in client.text(sender, "1234")
    assert "格式不对" in client.text(sender, "不知道")
    reply = client.text(sender, "12")
    assert "转人工" in reply and "没能记录" in reply, reply


def test_progress_query_is_verified_by_the_phone_tail(client: Client, sender: str) -> None:
    r = client.post("/api/v1/workorders", {"channel": "phone", "category": "投诉", "content": "绿化带长期无人修剪",
                                           "address": "淞滨路1号", "contact": {"phone": "13955556789"}})
    number = r.json()["number"]
    assert "工单编号" in client.text(sender, "我想查一下工单进度")
    assert "后四位" in client.text(sender, number)
    reply = client.text(sender, "6789")
    assert number in reply and "受理" in reply and "13955556789" not in reply, reply
    client.text(sender, f"查询工单{number}")
    assert "不匹配" in client.text(sender, "0000")


# -- WeChat ---------------------------------------------------------------------------------------------

def wechat_xml(user: str, content: str | None = None, msg_id: int | None = None, event: str | None = None,
               msg_type: str = "text") -> str:
    now = int(time.time())
    if event:
        return (f"<xml><ToUserName><![CDATA[gh_hotline]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
                f"<Event><![CDATA[{event}]]></Event></xml>")
    body = f"<Content><![CDATA[{content}]]></Content>" if msg_type == "text" else \
        "<PicUrl><![CDATA[http://example.invalid/a.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>"
    return (f"<xml><ToUserName><![CDATA[gh_hotline]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{body}"
            f"<MsgId>{msg_id or uuid.uuid4().int % 10**16}</MsgId></xml>")


class WeChat:
    """Signs and (in safe mode) encrypts messages exactly as the WeChat server does, with wechatpy."""

    def __init__(self, stack: Any, safe: bool = False) -> None:
        self.url = f"{stack.rasa_url}/webhooks/wechat/webhook"
        self.token = stack.wechat["WECHAT_TOKEN"]
        self.crypto = WeChatCrypto(self.token, stack.wechat["WECHAT_ENCODING_AES_KEY"], stack.wechat["WECHAT_APP_ID"])
        self.safe = safe

    def params(self, token: str | None = None) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        signer = WeChatSigner()
        signer.add_data(token or self.token, timestamp, nonce)
        return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce, "openid": "o"}

    def post(self, xml: str, token: str | None = None) -> httpx.Response:
        params = self.params(token)
        if self.safe:
            encrypted = self.crypto.encrypt_message(xml, params["nonce"], params["timestamp"])
            params["msg_signature"] = xmltodict.parse(encrypted)["xml"]["MsgSignature"]
            params["encrypt_type"] = "aes"
            xml = encrypted
        return httpx.post(self.url, params=params, content=xml.encode(), timeout=30)

    def reply_text(self, r: httpx.Response, params: dict[str, str] | None = None) -> str:
        assert r.status_code == 200, r.text
        if r.text == "success":
            return ""
        doc = xmltodict.parse(r.text)["xml"]
        if "Encrypt" in doc:
            inner = self.crypto.decrypt_message(r.text, doc["MsgSignature"], doc["TimeStamp"], doc["Nonce"])
            doc = xmltodict.parse(inner)["xml"]
        return doc["Content"]


@pytest.mark.parametrize("safe", [False, True], ids=["plaintext", "safe-mode"])
def test_wechat_policy_question_gets_a_passive_reply(stack: Any, safe: bool) -> None:
    wx = WeChat(stack, safe)
    user = "o" + uuid.uuid4().hex[:12]
    text = wx.reply_text(wx.post(wechat_xml(user, "跨省异地就医怎么备案")))
    assert "政策依据" in text and "1. 有帮助" in text, text


def test_wechat_subscribe_non_text_and_bad_signature(stack: Any) -> None:
    wx = WeChat(stack)
    user = "o" + uuid.uuid4().hex[:12]
    assert "12345" in wx.reply_text(wx.post(wechat_xml(user, event="subscribe")))
    assert "文字" in wx.reply_text(wx.post(wechat_xml(user, msg_type="image")))
    assert wx.post(wechat_xml(user, "你好"), token="wrong-token").status_code == 403


def test_wechat_retries_make_one_turn_and_one_work_order(client: Client, stack: Any) -> None:
    wx = WeChat(stack)
    user = "o" + uuid.uuid4().hex[:12]
    marker = uuid.uuid4().hex[:6]
    wx.reply_text(wx.post(wechat_xml(user, f"举报小区里有人违章搭建，天天在楼顶施工 {marker}")))
    for answer in ("宝林八村20号", "这个月开始", "13700001111"):
        wx.reply_text(wx.post(wechat_xml(user, answer)))
    summary = wx.reply_text(wx.post(wechat_xml(user, "匿名")))
    assert "确认提交" in summary, summary
    confirm = wechat_xml(user, "确认", msg_id=uuid.uuid4().int % 10**16)
    replies = [wx.reply_text(wx.post(confirm)) for _ in range(3)]  # WeChat's retries: the same MsgId, thrice
    orders = orders_with(client, marker)
    assert len(orders) == 1 and orders[0]["channel"] == "wechat" and orders[0]["category"] == "举报"
    assert all(r == replies[0] for r in replies if r) and orders[0]["number"] in replies[0]
