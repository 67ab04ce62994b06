"""WeChat Official Account (微信公众号) as a Rasa input channel.

Configured in credentials.yml as ``bot.channels.wechat.WeChatInput`` (token, encoding_aes_key, app_id,
redis_url, reply_timeout); Rasa mounts the blueprint at ``/webhooks/wechat/``, so the URL to enter in
the WeChat admin console is ``https://<host>/webhooks/wechat/webhook``.

Two WeChat rules shape this module:

* The 5-second rule: WeChat drops a passive-reply request after 5 s. We wait at most ``reply_timeout``
  (4.5 s) for Rasa; if the turn is not done we answer ``success`` (which tells WeChat "no reply, do
  not retry") and let the turn finish in the background, so the conversation state stays right.
* Retries: when WeChat gets no answer in time it re-sends the same message up to 3 times with the
  same MsgId. A retry must not start a second conversation turn (that would, e.g., file a second
  work order), so every MsgId is processed once: in this process through a MsgId -> task cache, and
  across replicas through ``SET wechat:msg:<id> NX`` in Redis, the winner publishing its reply under
  ``wechat:reply:<id>`` for the others.

Passive replies are plain text: buttons become a numbered list, and a later reply of just the number
is mapped back to the button's payload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from xml.parsers.expat import ExpatError

import redis.asyncio as aioredis
import xmltodict
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.exceptions import RasaException
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import (
    LocationEvent,
    MassSendJobFinishEvent,
    SubscribeEvent,
    SubscribeScanEvent,
    TemplateSendJobFinishEvent,
    UnsubscribeEvent,
)
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.messages import BaseMessage, TextMessage
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

logger = logging.getLogger(__name__)

GREET_PAYLOAD = "/greet"
NON_TEXT_PAYLOAD = "/non_text"
# Shown when the turn itself failed: better than silence, and it points to the phone line.
APOLOGY = "抱歉，系统暂时无法处理您的消息，请稍后再试，或直接拨打12345热线。"

MAX_REPLY_BYTES = 2048  # WeChat's limit for a text message, in UTF-8 bytes
ELLIPSIS = "……"
SENTENCE_ENDS = "。！？!?；;\n"
MAX_BODY_BYTES = 64 * 1024  # real WeChat pushes are a few hundred bytes
DEDUP_TTL_S = 300  # WeChat's retries all fall within ~15 s; 5 min is a wide margin
BUTTONS_TTL_S = 1800  # how long a numbered list stays answerable by its numbers
REDIS_RETRY_AFTER_S = 30.0  # after a Redis failure, don't pay its connect timeout on every message
POLL_INTERVAL_S = 0.1
# Pushed by WeChat itself, not by a citizen: answering them would only add noise to the conversation.
SYSTEM_EVENTS = (MassSendJobFinishEvent, TemplateSendJobFinishEvent, LocationEvent)

_BUTTON_NUMBER = re.compile(r"\s*(\d{1,2})\s*[.。、]?\s*")
_XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


def render_reply(messages: Iterable[dict[str, Any]]) -> tuple[str, list[str]]:
    """The bot's messages as one WeChat text, and the payloads of its buttons in display order."""
    parts: list[str] = []
    payloads: list[str] = []
    for m in messages:
        lines = [str(m[k]) for k in ("text", "image", "attachment") if isinstance(m.get(k), str) and m[k].strip()]
        for b in m.get("buttons") or []:
            title = str(b.get("title") or b.get("payload") or "")
            payloads.append(str(b.get("payload") or title))
            # numbered across the whole reply, so every number the user sees is unique
            lines.append(f"{len(payloads)}. {title}")
        if lines:
            parts.append("\n".join(lines))
    return fit_wechat("\n\n".join(parts)), payloads


def fit_wechat(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """Text within WeChat's byte limit, cut after a sentence and marked with an ellipsis."""
    text = _XML_INVALID.sub("", text).strip()
    if len(text.encode()) <= limit:
        return text
    head = text.encode()[: limit - len(ELLIPSIS.encode())].decode("utf-8", "ignore")
    cut = max(head.rfind(c) for c in SENTENCE_ENDS)
    # a sentence end far back would throw away most of the answer: then cut mid-sentence
    if cut >= len(head) // 2:
        head = head[: cut + 1]
    return head.rstrip() + ELLIPSIS


def _cdata_safe(text: str) -> str:
    # wechatpy wraps the content in CDATA as is; "]]>" inside it would end the section early
    return text.replace("]]>", "]]]]><![CDATA[>")


class WeChatInput(InputChannel):
    """Passive-reply webhook of a WeChat Official Account, plaintext or safe (AES) mode."""

    @classmethod
    def name(cls) -> str:
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WeChatInput:
        if credentials is None:
            cls.raise_missing_credentials_exception()
        try:
            timeout = float(credentials.get("reply_timeout") or 4.5)
        except (TypeError, ValueError) as e:
            raise RasaException(f"wechat: reply_timeout must be a number of seconds: {e}") from e
        return cls(
            token=str(credentials.get("token") or ""),
            encoding_aes_key=str(credentials.get("encoding_aes_key") or "") or None,
            app_id=str(credentials.get("app_id") or ""),
            redis_url=str(credentials.get("redis_url") or "") or None,
            reply_timeout=timeout,
        )

    def __init__(self, token: str, encoding_aes_key: str | None = None, app_id: str = "",
                 redis_url: str | None = None, reply_timeout: float = 4.5) -> None:
        if not token:
            # the channel stays mounted but rejects everything: one credentials.yml serves dev and prod
            logger.warning("wechat: no token configured, the WeChat webhook will reject every request")
        if reply_timeout <= 0 or reply_timeout >= 5:
            logger.warning("wechat: reply_timeout %.1fs is outside (0, 5): WeChat gives up after 5 s",
                           reply_timeout)
        self.token = token
        self.app_id = app_id
        self.reply_timeout = reply_timeout
        self.crypto: WeChatCrypto | None = None
        if encoding_aes_key:
            if not app_id:
                raise RasaException("wechat: app_id is required when encoding_aes_key is set (safe mode)")
            try:
                self.crypto = WeChatCrypto(token, encoding_aes_key, app_id)
            except (AssertionError, ValueError) as e:
                raise RasaException("wechat: encoding_aes_key must be the 43-character key from the "
                                    "WeChat admin console") from e
        self.redis_url = redis_url
        self._redis: aioredis.Redis | None = None
        self._redis_down_until = 0.0
        # MsgId -> (started, task); the task yields the reply text, or None when another replica has it
        self._turns: dict[str, tuple[float, asyncio.Task[str | None]]] = {}
        self._running: set[asyncio.Task[str | None]] = set()
        self._buttons: dict[str, tuple[float, list[str]]] = {}  # openid -> (when, payloads)

    # ---- HTTP ---------------------------------------------------------------------------------------

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        bp = Blueprint("wechat_webhook", __name__)

        @bp.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            # URL verification when the server address is saved in the WeChat console (plain in both modes)
            if not self._signed(request):
                return response.text("invalid signature", status=403)
            echostr = request.args.get("echostr")
            if echostr is None:
                return response.text("missing echostr", status=400)
            return response.text(echostr)

        @bp.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                return await self._receive(request, on_new_message)
            except Exception:  # a 5xx makes WeChat retry and then show an error to the citizen
                logger.exception("wechat: unexpected error while handling a message")
                return response.text("success")

        @bp.listener("after_server_stop")
        async def close_redis(*_: Any) -> None:
            if self._redis is not None:
                await self._redis.close()
                self._redis = None

        return bp

    def _signed(self, request: Request) -> bool:
        a = request.args
        if not self.token or not all(a.get(k) for k in ("signature", "timestamp", "nonce")):
            return False
        try:
            check_signature(self.token, a.get("signature"), a.get("timestamp"), a.get("nonce"))
        except InvalidSignatureException:
            return False
        return True

    async def _receive(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        started = time.monotonic()
        args = request.args
        safe = args.get("encrypt_type") == "aes"
        body = request.body or b""
        if len(body) > MAX_BODY_BYTES:
            return response.text("payload too large", status=413)
        if safe:
            if self.crypto is None:
                logger.error("wechat: got a safe-mode (encrypted) message but no encoding_aes_key is configured")
                return response.text("encryption not configured", status=403)
            try:
                outer = xmltodict.parse(body)["xml"]
                encrypted = outer["Encrypt"]
                if not isinstance(encrypted, str):
                    raise TypeError("Encrypt is not text")
            except (ExpatError, KeyError, TypeError, ValueError):
                return response.text("malformed xml", status=400)
            try:
                xml = self.crypto.decrypt_message(outer, args.get("msg_signature"), args.get("timestamp"),
                                                  args.get("nonce"))
            except Exception:  # bad signature, wrong app id, not our key: nothing to trust here
                return response.text("invalid signature", status=403)
        else:
            if not self._signed(request):
                return response.text("invalid signature", status=403)
            xml = body
        try:
            msg = parse_message(xml)
            sender, recipient, key = msg.source, msg.target, self._dedup_key(msg)
            content = msg.content if isinstance(msg, TextMessage) else None
        except (ExpatError, KeyError, TypeError, ValueError, AttributeError):
            return response.text("malformed xml", status=400)
        if not (isinstance(sender, str) and sender and isinstance(recipient, str)):
            return response.text("malformed xml", status=400)

        if isinstance(msg, UnsubscribeEvent):
            self._buttons.pop(sender, None)
            return response.text("success")
        if isinstance(msg, SYSTEM_EVENTS):
            return response.text("success")
        if isinstance(msg, TextMessage):
            if not isinstance(content, str):
                return response.text("malformed xml", status=400)
            text, from_user = content, True
        elif isinstance(msg, (SubscribeEvent, SubscribeScanEvent)):
            text, from_user = GREET_PAYLOAD, False
        else:  # image, voice, video, location, link, file, menu clicks…: the domain has the polite answer
            text, from_user = NON_TEXT_PAYLOAD, False

        reply = await self._answer(on_new_message, key, sender, text, from_user,
                                   deadline=started + self.reply_timeout)
        if reply is None:
            logger.warning("wechat: no reply for message %s within %.1fs; answered 'success'", key,
                           self.reply_timeout)
            return response.text("success")
        if not reply:
            return response.text("success")
        xml_reply = TextReply(message=msg, content=_cdata_safe(reply)).render()
        if safe and self.crypto is not None:
            xml_reply = self.crypto.encrypt_message(xml_reply, args.get("nonce"), args.get("timestamp"))
        return response.text(xml_reply, content_type="application/xml; charset=utf-8")

    @staticmethod
    def _dedup_key(msg: BaseMessage) -> str:
        if msg.id:
            return str(msg.id)
        # events carry no MsgId: WeChat's advice is to de-duplicate them by FromUserName + CreateTime
        return f"{msg.source}:{msg.time}:{getattr(msg, 'event', msg.type)}"

    # ---- one turn per MsgId -------------------------------------------------------------------------

    async def _answer(self, on_new_message: OnNewMessage, key: str, sender: str, text: str, from_user: bool,
                      deadline: float) -> str | None:
        """The reply for this message, or None if it is not ready by the deadline."""
        self._prune()
        entry = self._turns.get(key)
        task = entry[1] if entry else None
        # a finished task with None only followed another replica and found nothing yet: look again
        if task is None or (task.done() and (task.cancelled() or
                                             (task.exception() is None and task.result() is None))):
            task = asyncio.ensure_future(self._claim_and_run(on_new_message, key, sender, text, from_user))
            self._turns.pop(key, None)
            self._turns[key] = (time.monotonic(), task)
            self._running.add(task)
            task.add_done_callback(self._turn_done(key, time.monotonic()))
        try:
            # shield: timing out must not cancel the turn, it keeps going in the background
            return await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:  # noqa: UP041 - Python 3.10: not yet the builtin TimeoutError
            return None

    def _turn_done(self, key: str, started: float) -> Callable[[asyncio.Task[str | None]], None]:
        def done(task: asyncio.Task[str | None]) -> None:
            self._running.discard(task)
            elapsed = time.monotonic() - started
            if task.cancelled():
                logger.warning("wechat: turn for message %s was cancelled after %.1fs", key, elapsed)
            elif task.exception() is not None:
                logger.error("wechat: turn for message %s failed", key, exc_info=task.exception())
            elif elapsed > self.reply_timeout:
                logger.info("wechat: turn for message %s finished in the background after %.1fs", key, elapsed)
        return done

    async def _claim_and_run(self, on_new_message: OnNewMessage, key: str, sender: str, text: str,
                             from_user: bool) -> str | None:
        claimed = await self._shared(lambda r: r.set(f"wechat:msg:{key}", "1", nx=True, ex=DEDUP_TTL_S))
        if claimed is None:  # another replica owns this MsgId: wait for the reply it publishes
            return await self._follow(key)
        # claimed is True (Redis) or _UNAVAILABLE (no Redis): this process runs the turn
        reply = await self._run_turn(on_new_message, key, sender, text, from_user)
        if claimed is True:
            await self._shared(lambda r: r.set(f"wechat:reply:{key}", reply, ex=DEDUP_TTL_S))
        return reply

    async def _follow(self, key: str) -> str | None:
        until = time.monotonic() + self.reply_timeout
        while True:
            reply = await self._shared(lambda r: r.get(f"wechat:reply:{key}"))
            if isinstance(reply, bytes):
                return reply.decode()
            if reply is _UNAVAILABLE or time.monotonic() >= until:
                return None
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _run_turn(self, on_new_message: OnNewMessage, key: str, sender: str, text: str,
                        from_user: bool) -> str:
        if from_user:
            # a typed "/intent{...}" would let anyone fire intents and set entities: only buttons may
            text = await self._button_payload(sender, text) or text.lstrip("/")
        collector = CollectingOutputChannel()
        message = UserMessage(text, collector, sender_id=sender, input_channel=self.name(), message_id=key,
                              metadata={"msg_id": key})
        try:
            await on_new_message(message)
        except Exception:
            logger.exception("wechat: the bot failed on message %s", key)
            return APOLOGY
        reply, payloads = render_reply(collector.messages)
        await self._remember_buttons(sender, payloads)
        return reply

    # ---- numbered buttons ---------------------------------------------------------------------------

    async def _remember_buttons(self, sender: str, payloads: list[str]) -> None:
        # the latest turn decides: a turn without buttons makes a bare number plain text again
        if payloads:
            self._buttons[sender] = (time.monotonic(), payloads)
            await self._shared(lambda r: r.set(f"wechat:buttons:{sender}", json.dumps(payloads), ex=BUTTONS_TTL_S))
        else:
            self._buttons.pop(sender, None)
            await self._shared(lambda r: r.delete(f"wechat:buttons:{sender}"))

    async def _button_payload(self, sender: str, text: str) -> str | None:
        m = _BUTTON_NUMBER.fullmatch(text)
        if not m:
            return None
        stored = await self._shared(lambda r: r.get(f"wechat:buttons:{sender}"))
        if stored is _UNAVAILABLE:
            when, payloads = self._buttons.get(sender, (0.0, []))
            if time.monotonic() - when > BUTTONS_TTL_S:
                payloads = []
        else:
            payloads = json.loads(stored) if stored else []
        n = int(m.group(1))
        return payloads[n - 1] if 1 <= n <= len(payloads) else None

    # ---- Redis (optional) ---------------------------------------------------------------------------

    async def _shared(self, op: Callable[[aioredis.Redis], Awaitable[Any]]) -> Any:
        """Runs op on Redis; _UNAVAILABLE when Redis is not configured or not reachable."""
        if not self.redis_url or time.monotonic() < self._redis_down_until:
            return _UNAVAILABLE
        try:
            if self._redis is None:
                self._redis = aioredis.from_url(self.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0)
            return await op(self._redis)
        except (RedisError, OSError, asyncio.TimeoutError) as e:  # noqa: UP041 - see above (3.10)
            self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_S
            logger.warning("wechat: Redis unreachable (%s); de-duplicating within this process only for the "
                           "next %.0fs", e, REDIS_RETRY_AFTER_S)
            return _UNAVAILABLE

    def _prune(self) -> None:
        now = time.monotonic()
        for key in list(self._turns):
            if now - self._turns[key][0] <= DEDUP_TTL_S:
                break  # insertion order is start order: the rest are younger
            del self._turns[key]
        if len(self._buttons) > 10_000:
            for sender, (when, _) in list(self._buttons.items()):
                if now - when > BUTTONS_TTL_S:
                    del self._buttons[sender]


class _Unavailable:
    def __repr__(self) -> str:
        return "<redis unavailable>"


_UNAVAILABLE = _Unavailable()
