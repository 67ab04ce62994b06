"""Rasa's socket.io channel with its session_request handler fixed.

Rasa 3.6.21 calls `sio.enter_room(...)` without awaiting it; with python-socketio 5.x that call is a coroutine,
so with session persistence the browser never joins its room and never receives a reply
(RasaHQ/rasa#13027, fix not merged). Same URL and settings as the stock channel.
"""

from __future__ import annotations

import uuid
from typing import Any

from rasa.core.channels import socketio as rasa_socketio
from sanic import Blueprint


class SocketIOInput(rasa_socketio.SocketIOInput):
    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message: Any) -> Blueprint:
        bp = super().blueprint(on_new_message)
        sio = self.sio

        @sio.on("session_request", namespace=self.namespace)  # replaces Rasa's handler
        async def session_request(sid: str, data: dict[str, Any] | None) -> None:
            session_id = (data or {}).get("session_id") or uuid.uuid4().hex
            if self.session_persistence:
                await sio.enter_room(sid, session_id)
            await sio.emit("session_confirm", session_id, room=sid)

        return bp
