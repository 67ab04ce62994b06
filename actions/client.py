"""The one HTTP client the actions use to reach the core API. No business rules here: the API decides.

Every call has a short timeout (WeChat gives a whole turn 5 seconds); any network failure, timeout or 5xx
becomes `ApiUnavailable`, which actions turn into a polite message and a handoff offer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(4.0, connect=1.5)


class ApiUnavailable(Exception):
    """The core API could not be reached, timed out or failed (5xx)."""


class ApiRefused(Exception):
    """The API answered with a 4xx: `message` is its explanation, fit to show a citizen."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _token() -> str:
    token = os.environ.get("HOTLINE_BOT_TOKEN", "").strip()
    if token:
        return token
    # Development: the API generated one under the shared data dir on first start.
    path = Path(os.environ.get("HOTLINE_DATA_DIR", "./var")) / "bot_token"
    return path.read_text().strip() if path.exists() else ""


class CoreApi:
    def __init__(self, base_url: str | None = None, token: str | None = None,
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = (base_url or os.environ.get("HOTLINE_API_URL", "http://127.0.0.1:8000")).rstrip("/")
        self._token = token
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    def _headers(self) -> dict[str, str]:
        token = self._token if self._token is not None else _token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        try:
            r = await self._client.request(method, path, headers={**self._headers(), **(headers or {})}, **kwargs)
        except httpx.HTTPError as e:
            raise ApiUnavailable(f"{method} {path}: {e!r}") from e
        if r.status_code >= 500:
            raise ApiUnavailable(f"{method} {path}: HTTP {r.status_code}")
        if r.status_code >= 400:
            try:
                message = r.json().get("detail") or r.text
            except ValueError:
                message = r.text
            raise ApiRefused(r.status_code, str(message))
        return r.json()

    async def search(self, query: str, channel: str, top_k: int = 3) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/kb/search", json={"query": query, "top_k": top_k, "channel": channel})

    async def correction(self, entry_id: str, version: int, comment: str, channel: str) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/kb/corrections",
                                json={"entry_id": entry_id, "version": version, "comment": comment, "channel": channel})

    async def missing(self, question: str, shown: list[str], channel: str) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/kb/missing",
                                json={"question": question, "shown": shown, "channel": channel})

    async def classify(self, text: str) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/intake/classify", json={"text": text})

    async def create_order(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return await self._call("POST", "/api/v1/workorders", json=body, headers=headers)

    async def progress(self, number: str, phone_last4: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/workorders/{number}/progress", json={"phone_last4": phone_last4})

    async def handoff(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/api/v1/handoffs", json=body)


_default: CoreApi | None = None


def api() -> CoreApi:
    """One client per action-server process, so connections are pooled."""
    global _default
    if _default is None:
        _default = CoreApi()
    return _default


def set_api(client: CoreApi | None) -> None:
    """Tests point the actions at a client of their own."""
    global _default
    _default = client
