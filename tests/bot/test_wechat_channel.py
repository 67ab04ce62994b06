"""The WeChat Official Account channel, served by a real Sanic server in the test's event loop.

Runs in the bot environment (.venv-bot): `.venv-bot/bin/python -m pytest -q tests/bot/test_wechat_channel.py`.
Messages are built with xmltodict (the parser wechatpy uses) and checked with wechatpy.parse_message;
signatures and safe-mode encryption come from wechatpy itself. The Redis tests use the real Redis at
HOTLINE_TEST_REDIS_URL (default redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("rasa", reason="the bot tests run in .venv-bot (Rasa 3.6)")

import aiohttp  # noqa: E402
import xmltodict  # noqa: E402
from rasa.core.channels.channel import UserMessage, register  # noqa: E402
from sanic import Sanic  # noqa: E402
from wechatpy import parse_message  # noqa: E402
from wechatpy.crypto import WeChatCrypto  # noqa: E402
from wechatpy.utils import WeChatSigner  # noqa: E402

from bot.channels.wechat import ELLIPSIS, MAX_REPLY_BYTES, WeChatInput, fit_wechat, render_reply  # noqa: E402

TOKEN = "hotline-test-token"
AES_KEY = base64.b64encode(os.urandom(32)).decode().rstrip("=")  # 43 characters, as in the WeChat console
APP_ID = "wx0123456789abcdef"
ACCOUNT = "gh_12345hotline"
OPENID = "oUser-openid-0001"
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def async_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))
    return run


class FakeBot:
    """Stands in for Agent.handle_message: records turns and answers through the output channel."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.calls: list[UserMessage] = []
        self.finished = 0

    async def __call__(self, message: UserMessage) -> None:
        self.calls.append(message)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("bot down")
        out = message.output_channel
        if message.text == "/greet":
            await out.send_text_with_buttons(message.sender_id, "您好，这里是12345热线智能助手。", [
                {"title": "咨询政策", "payload": "/ask_policy"},
                {"title": "投诉", "payload": "/complain"},
            ])
        elif message.text == "/non_text":
            await out.send_text_message(message.sender_id, "抱歉，我目前只能看懂文字消息。")
        else:
            await out.send_text_message(message.sender_id, f"收到：{message.text}")
        self.finished += 1

    @property
    def texts(self) -> list[str | None]:
        return [m.text for m in self.calls]


@dataclass
class Client:
    url: str
    session: aiohttp.ClientSession
    crypto: WeChatCrypto | None = None

    def signed_query(self, **extra: str) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
        signer = WeChatSigner()
        signer.add_data(TOKEN, timestamp, nonce)
        return {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce, **extra}

    async def post(self, xml: str | bytes, query: dict[str, str] | None = None,
                   safe: bool = False) -> tuple[int, str]:
        query = self.signed_query() if query is None else query
        if safe:
            assert self.crypto is not None
            envelope = xmltodict.parse(self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"]))["xml"]
            query = {**query, "encrypt_type": "aes", "msg_signature": envelope["MsgSignature"]}
            xml = xmltodict.unparse({"xml": {"ToUserName": ACCOUNT, "Encrypt": envelope["Encrypt"]}})
        async with self.session.post(f"{self.url}/webhooks/wechat/webhook", params=query, data=xml) as r:
            return r.status, await r.text()

    async def reply(self, xml: str, safe: bool = False) -> dict[str, Any] | str:
        """The passive reply as a dict, or the plain body ("success") when there is no XML."""
        status, body = await self.post(xml, safe=safe)
        assert status == 200, body
        if not body.startswith("<xml"):
            return body
        if safe:
            assert self.crypto is not None
            env = xmltodict.parse(body)["xml"]
            body = self.crypto.decrypt_message(body, env["MsgSignature"], env["TimeStamp"], env["Nonce"])
        return xmltodict.parse(body)["xml"]


def _free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(bot: FakeBot, *channels: WeChatInput) -> AsyncIterator[list[Client]]:
    """One Sanic app per channel (like one Rasa replica each), all on the current event loop."""
    Sanic.test_mode = True  # several apps in one process: Sanic must keep its startup touch-ups reversible
    servers = []
    async with aiohttp.ClientSession() as session:
        clients = []
        try:
            for channel in channels:
                app = Sanic(f"wechat_test_{uuid.uuid4().hex}", configure_logging=False)
                app.ctx.agent = SimpleNamespace(handle_message=bot)
                register([channel], app, route="/webhooks/")
                sock = _free_socket()
                # create_server already listens; startup() finalizes the routes before any request is sent
                srv = await app.create_server(sock=sock, return_asyncio_server=True, access_log=False)
                await srv.startup()
                await srv.before_start()
                await srv.after_start()
                servers.append(srv)
                host, port = sock.getsockname()
                clients.append(Client(f"http://{host}:{port}", session, channel.crypto))
            yield clients
        finally:
            for srv in servers:
                await srv.before_stop()
                srv.close()
                await srv.wait_closed()
                await srv.after_stop()


def channel(**kw: Any) -> WeChatInput:
    return WeChatInput(token=TOKEN, **({"reply_timeout": 2.0} | kw))


def message_xml(msg_type: str = "text", msg_id: int | None = None, sender: str = OPENID, **fields: str) -> str:
    data: dict[str, Any] = {"ToUserName": ACCOUNT, "FromUserName": sender, "CreateTime": str(int(time.time())),
                            "MsgType": msg_type, **fields}
    if msg_type != "event":
        data["MsgId"] = str(msg_id if msg_id is not None else random.getrandbits(62))
    xml = xmltodict.unparse({"xml": data}, full_document=False)
    parsed = parse_message(xml)  # the fixture must be something wechatpy itself understands
    assert parsed.source == sender and parsed.type in (msg_type, "unknown")
    return xml


def text_xml(content: str, msg_id: int | None = None, sender: str = OPENID) -> str:
    return message_xml("text", msg_id, sender, Content=content)


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    until = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < until, "timed out"
        await asyncio.sleep(0.02)


# ---- URL verification -----------------------------------------------------------------------------


@async_test
async def test_get_verification_echoes_echostr_for_a_good_signature() -> None:
    async with serving(FakeBot(), channel()) as [c]:
        async with c.session.get(f"{c.url}/webhooks/wechat/webhook", params=c.signed_query(echostr="e123")) as r:
            assert r.status == 200
            assert await r.text() == "e123"
            assert r.content_type == "text/plain"


@async_test
async def test_get_verification_rejects_a_bad_signature() -> None:
    async with serving(FakeBot(), channel()) as [c]:
        query = c.signed_query(echostr="e123") | {"signature": "0" * 40}
        async with c.session.get(f"{c.url}/webhooks/wechat/webhook", params=query) as r:
            assert r.status == 403
        async with c.session.get(f"{c.url}/webhooks/wechat/webhook", params={"echostr": "e123"}) as r:
            assert r.status == 403


# ---- messages --------------------------------------------------------------------------------------


@async_test
async def test_plaintext_text_message_gets_the_bots_text_back_to_the_user() -> None:
    bot = FakeBot()
    async with serving(bot, channel()) as [c]:
        reply = await c.reply(text_xml("公积金怎么提取", msg_id=1001))
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
    assert reply["MsgType"] == "text" and reply["Content"] == "收到：公积金怎么提取"
    [call] = bot.calls
    assert (call.text, call.sender_id, call.input_channel) == ("公积金怎么提取", OPENID, "wechat")
    assert call.metadata == {"msg_id": "1001"}


@async_test
async def test_safe_mode_round_trip() -> None:
    bot = FakeBot()
    async with serving(bot, channel(encoding_aes_key=AES_KEY, app_id=APP_ID)) as [c]:
        reply = await c.reply(text_xml("社保卡丢了怎么办"), safe=True)
        # the admin console may switch back to plaintext mode: the same channel still answers it
        plain = await c.reply(text_xml("你好"))
    assert reply["ToUserName"] == OPENID and reply["Content"] == "收到：社保卡丢了怎么办"
    assert plain["Content"] == "收到：你好"
    assert bot.texts == ["社保卡丢了怎么办", "你好"]


@async_test
async def test_the_same_msgid_three_times_makes_one_turn_and_one_reply() -> None:
    bot = FakeBot(delay=0.3)
    async with serving(bot, channel(reply_timeout=2.0)) as [c]:
        xml = text_xml("我要投诉噪音", msg_id=2002)
        replies = await asyncio.gather(*(c.reply(xml) for _ in range(3)))
        later = await c.reply(xml)  # a retry after the turn finished gets the same answer
    assert len(bot.calls) == 1
    assert [r["Content"] for r in [*replies, later]] == ["收到：我要投诉噪音"] * 4


@async_test
async def test_a_slow_bot_gets_success_and_the_turn_still_completes() -> None:
    bot = FakeBot(delay=0.8)
    async with serving(bot, channel(reply_timeout=0.3)) as [c]:
        xml = text_xml("办理居住证需要什么材料", msg_id=3003)
        started = time.monotonic()
        assert await c.reply(xml) == "success"
        assert time.monotonic() - started < 0.7
        await wait_until(lambda: bot.finished == 1)
        # WeChat's retry of the same MsgId now finds the finished turn
        retry = await c.reply(xml)
    assert len(bot.calls) == 1
    assert retry["Content"] == "收到：办理居住证需要什么材料"


@async_test
async def test_subscribe_sends_greet_and_replies_with_the_welcome_and_numbered_buttons() -> None:
    bot = FakeBot()
    async with serving(bot, channel()) as [c]:
        reply = await c.reply(message_xml("event", Event="subscribe", EventKey=""))
    assert bot.texts == ["/greet"]
    assert reply["Content"] == "您好，这里是12345热线智能助手。\n1. 咨询政策\n2. 投诉"


@async_test
async def test_unsubscribe_is_acknowledged_without_a_turn() -> None:
    bot = FakeBot()
    async with serving(bot, channel()) as [c]:
        assert await c.reply(message_xml("event", Event="unsubscribe")) == "success"
        assert await c.reply(message_xml("event", Event="TEMPLATESENDJOBFINISH", Status="success")) == "success"
    assert bot.calls == []


@pytest.mark.parametrize(("msg_type", "fields"), [
    ("image", {"PicUrl": "http://example.invalid/a.jpg", "MediaId": "m1"}),
    ("voice", {"MediaId": "m2", "Format": "amr"}),
    ("location", {"Location_X": "23.1", "Location_Y": "113.3", "Scale": "20", "Label": "某地"}),
    ("event", {"Event": "CLICK", "EventKey": "menu_1"}),
])
@async_test
async def test_non_text_messages_send_non_text(msg_type: str, fields: dict[str, str]) -> None:
    bot = FakeBot()
    async with serving(bot, channel()) as [c]:
        reply = await c.reply(message_xml(msg_type, **fields))
    assert bot.texts == ["/non_text"]
    assert reply["Content"] == "抱歉，我目前只能看懂文字消息。"


@async_test
async def test_a_button_number_is_sent_as_the_buttons_payload() -> None:
    bot = FakeBot()
    async with serving(bot, channel()) as [c]:
        await c.reply(message_xml("event", Event="subscribe"))
        await c.reply(text_xml("2"))
        await c.reply(text_xml("1"))  # the last turn had no buttons: now "1" is just text
        # a new subscribe needs a new CreateTime: events are de-duplicated by user + CreateTime
        await c.reply(message_xml("event", Event="subscribe", CreateTime=str(int(time.time()) + 1)))
        await c.reply(text_xml("１"))  # a full-width digit from a Chinese keyboard
        await c.reply(text_xml("/restart"))  # typed intents are not honoured
        await c.reply(text_xml("2", sender="oSomeone-else"))  # another user's list is not shared
    assert bot.texts == ["/greet", "/complain", "1", "/greet", "/ask_policy", "restart", "2"]


@async_test
async def test_a_failing_bot_gets_an_apology_not_an_error() -> None:
    async with serving(FakeBot(fail=True), channel()) as [c]:
        reply = await c.reply(text_xml("你好"))
    assert "12345" in reply["Content"]


# ---- bad requests ----------------------------------------------------------------------------------


@async_test
async def test_malformed_xml_is_400() -> None:
    bot = FakeBot()
    async with serving(bot, channel(encoding_aes_key=AES_KEY, app_id=APP_ID)) as [c]:
        assert (await c.post("<xml><ToUserName>broken"))[0] == 400
        assert (await c.post("<xml><ToUserName>x</ToUserName></xml>"))[0] == 400  # no MsgType
        assert (await c.post(""))[0] == 400
        safe = c.signed_query(encrypt_type="aes", msg_signature="x")
        assert (await c.post("<xml><Encrypt>", query=safe))[0] == 400
    assert bot.calls == []


@async_test
async def test_bad_signature_or_undecryptable_body_is_403() -> None:
    bot = FakeBot()
    async with serving(bot, channel(encoding_aes_key=AES_KEY, app_id=APP_ID)) as [c]:
        xml = text_xml("你好")
        assert (await c.post(xml, query=c.signed_query() | {"signature": "f" * 40}))[0] == 403
        assert (await c.post(xml, query={}))[0] == 403
        # safe mode: a valid envelope with a wrong msg_signature
        q = c.signed_query()
        env = xmltodict.parse(c.crypto.encrypt_message(xml, q["nonce"], q["timestamp"]))["xml"]
        body = xmltodict.unparse({"xml": {"Encrypt": env["Encrypt"]}})
        assert (await c.post(body, query=q | {"encrypt_type": "aes", "msg_signature": "0" * 40}))[0] == 403
        # encrypted for another account: the signature is right but the key is not ours
        other = WeChatCrypto(TOKEN, base64.b64encode(os.urandom(32)).decode().rstrip("="), APP_ID)
        env = xmltodict.parse(other.encrypt_message(xml, q["nonce"], q["timestamp"]))["xml"]
        body = xmltodict.unparse({"xml": {"Encrypt": env["Encrypt"]}})
        assert (await c.post(body, query=q | {"encrypt_type": "aes", "msg_signature": env["MsgSignature"]}))[0] == 403
    async with serving(bot, channel()) as [plain_only]:
        # encrypted push to a channel without encoding_aes_key
        assert (await plain_only.post(body, query=q | {"encrypt_type": "aes", "msg_signature": "x"}))[0] == 403
    assert bot.calls == []


# ---- across replicas -------------------------------------------------------------------------------


async def _redis_or_fail() -> Any:
    import redis.asyncio as aioredis
    r = aioredis.from_url(REDIS_URL)
    try:
        await r.ping()
    except Exception as e:  # the cross-replica path must be tested for real: fail loudly, never skip
        pytest.fail(f"Redis at {REDIS_URL} is required for the WeChat de-duplication tests: {e}")
    return r


@async_test
async def test_redis_dedup_across_two_replicas_makes_one_turn() -> None:
    r = await _redis_or_fail()
    msg_id = random.getrandbits(62)
    bot = FakeBot(delay=0.3)
    try:
        async with serving(bot, channel(redis_url=REDIS_URL), channel(redis_url=REDIS_URL)) as [a, b]:
            xml = text_xml("路灯坏了没人修", msg_id=msg_id)
            first, second = await asyncio.gather(a.reply(xml), b.reply(xml))
            again = await b.reply(xml)
            # the numbered list is shared too: the next message may land on the other replica
            await a.reply(message_xml("event", Event="subscribe"))
            await b.reply(text_xml("2"))
        assert bot.texts == ["路灯坏了没人修", "/greet", "/complain"]
        assert first["Content"] == second["Content"] == again["Content"] == "收到：路灯坏了没人修"
        assert await r.get(f"wechat:reply:{msg_id}") == "收到：路灯坏了没人修".encode()
    finally:
        await r.delete(f"wechat:msg:{msg_id}", f"wechat:reply:{msg_id}", f"wechat:buttons:{OPENID}")
        await r.close()


@async_test
async def test_redis_replica_that_lost_the_race_answers_success_if_the_winner_is_slow() -> None:
    r = await _redis_or_fail()
    msg_id = random.getrandbits(62)
    bot = FakeBot(delay=0.8)
    try:
        async with serving(bot, channel(redis_url=REDIS_URL, reply_timeout=0.3),
                           channel(redis_url=REDIS_URL, reply_timeout=0.3)) as [a, b]:
            xml = text_xml("占道经营", msg_id=msg_id)
            assert await a.reply(xml) == "success"
            assert await b.reply(xml) == "success"
            await wait_until(lambda: bot.finished == 1)
            assert (await b.reply(xml))["Content"] == "收到：占道经营"
        assert len(bot.calls) == 1
    finally:
        await r.delete(f"wechat:msg:{msg_id}", f"wechat:reply:{msg_id}")
        await r.close()


@async_test
async def test_unreachable_redis_falls_back_to_the_in_process_cache() -> None:
    bot = FakeBot(delay=0.2)
    async with serving(bot, channel(redis_url="redis://127.0.0.1:1/0")) as [c]:
        xml = text_xml("你好", msg_id=4004)
        replies = await asyncio.gather(c.reply(xml), c.reply(xml))
    assert len(bot.calls) == 1
    assert [x["Content"] for x in replies] == ["收到：你好"] * 2


# ---- rendering -------------------------------------------------------------------------------------


def test_long_replies_are_cut_after_a_sentence_within_2048_bytes() -> None:
    text = "公积金提取需要提供身份证和银行卡。" * 200
    out = fit_wechat(text)
    assert len(out.encode()) <= MAX_REPLY_BYTES
    assert out.endswith("。" + ELLIPSIS)
    assert fit_wechat("短答复。") == "短答复。"
    no_stop = fit_wechat("字" * 1000)
    assert len(no_stop.encode()) <= MAX_REPLY_BYTES and no_stop.endswith(ELLIPSIS)


def test_render_joins_messages_with_a_blank_line_and_numbers_buttons_across_them() -> None:
    text, payloads = render_reply([
        {"recipient_id": "u", "text": "第一段"},
        {"recipient_id": "u", "text": "请选择：", "buttons": [{"title": "是", "payload": "/affirm"}]},
        {"recipient_id": "u", "text": "或者：", "buttons": [{"title": "否", "payload": "/deny"}]},
    ])
    assert text == "第一段\n\n请选择：\n1. 是\n\n或者：\n2. 否"
    assert payloads == ["/affirm", "/deny"]


@async_test
async def test_cdata_terminator_in_bot_text_survives_the_xml() -> None:
    async with serving(FakeBot(), channel()) as [c]:
        reply = await c.reply(text_xml("a]]>b"))
    assert reply["Content"] == "收到：a]]>b"


def test_from_credentials() -> None:
    ch = WeChatInput.from_credentials({"token": "t", "encoding_aes_key": "", "app_id": "", "redis_url": "",
                                       "reply_timeout": "3"})
    assert (ch.crypto, ch.redis_url, ch.reply_timeout, ch.name()) == (None, None, 3.0, "wechat")
    safe = WeChatInput.from_credentials({"token": "t", "encoding_aes_key": AES_KEY, "app_id": APP_ID})
    assert safe.crypto is not None and safe.reply_timeout == 4.5
    from rasa.shared.exceptions import RasaException
    with pytest.raises(RasaException):
        WeChatInput.from_credentials({"token": "t", "encoding_aes_key": "too-short", "app_id": APP_ID})
