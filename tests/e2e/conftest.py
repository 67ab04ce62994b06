"""The whole system for end-to-end tests: real API, real action server, real Rasa with the trained model.

Production profile: the API on a fresh PostgreSQL database, Rasa's tracker store in PostgreSQL, its lock store
and the WeChat de-duplication in Redis. The model is the one `make train` produced (make test trains first).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PG_URL, create_pg_database, drop_pg_database
from tools.stack import ROOT, Stack

MODEL = ROOT / "var" / "models" / "hotline.tar.gz"
WECHAT = {"WECHAT_TOKEN": "e2e-wechat-token", "WECHAT_ENCODING_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
          "WECHAT_APP_ID": "wx0123456789abcdef"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Talks to the running stack like a citizen (REST channel) and like the office (admin API)."""

    def __init__(self, stack: Stack, admin_token: str) -> None:
        self.stack = stack
        self.http = httpx.Client(timeout=60)
        self.admin = {"Authorization": f"Bearer {admin_token}"}

    def say(self, sender: str, message: str) -> list[dict[str, Any]]:
        r = self.http.post(f"{self.stack.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": message})
        r.raise_for_status()
        return r.json()

    def text(self, sender: str, message: str) -> str:
        return "\n".join(m.get("text", "") for m in self.say(sender, message))

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(f"{self.stack.api_url}{path}", headers=self.admin, params=params)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, json: Any) -> httpx.Response:
        return self.http.post(f"{self.stack.api_url}{path}", headers=self.admin, json=json)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not MODEL.exists():
        pytest.fail(f"no trained Rasa model at {MODEL}: run `make train` (make test does it first)")
    suffix = uuid.uuid4().hex[:10]
    api_db, rasa_db = f"hotline_e2e_{suffix}", f"hotline_e2e_rasa_{suffix}"
    api_url = create_pg_database(api_db)
    create_pg_database(rasa_db)
    pg_host = PG_URL.split("@", 1)[1].split("/", 1)[0]
    host, _, port = pg_host.partition(":")
    data_dir = tmp_path_factory.mktemp("e2e-data")
    env = {
        "DATABASE_URL": api_url,
        "HOTLINE_ADMIN_TOKEN": "e2e-admin-" + suffix, "HOTLINE_BOT_TOKEN": "e2e-bot-" + suffix,
        "HOTLINE_INDEX_POLL_SECONDS": "0.5",
        "RASA_DB_HOST": host, "RASA_DB_PORT": port or "5432", "RASA_DB_NAME": rasa_db,
        "RASA_DB_USER": PG_URL.split("//", 1)[1].split("@", 1)[0].split(":", 1)[0], "RASA_DB_PASSWORD": "",
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": "6379", "REDIS_DB": "14",
        "WECHAT_REDIS_URL": "redis://127.0.0.1:6379/13", **WECHAT,
    }
    s = Stack(data_dir, api_port=free_port(), actions_port=free_port(), rasa_port=free_port(), model=MODEL,
              endpoints=ROOT / "bot" / "endpoints.production.yml", env=env)
    try:
        s.start(timeout=600)
    except RuntimeError as e:
        logs = data_dir / "logs"
        tails = "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.log")))
        drop_pg_database(api_db)
        drop_pg_database(rasa_db)
        pytest.fail(f"the stack did not start: {e}\n{tails}")
    s.admin_token = env["HOTLINE_ADMIN_TOKEN"]  # type: ignore[attr-defined]
    s.wechat = WECHAT  # type: ignore[attr-defined]
    yield s
    s.stop()
    drop_pg_database(api_db)
    drop_pg_database(rasa_db)


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[Client]:
    c = Client(stack, stack.admin_token)  # type: ignore[attr-defined]
    yield c
    c.http.close()


@pytest.fixture
def sender() -> str:
    return "e2e-" + uuid.uuid4().hex[:8]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # end-to-end tests start processes: mark them so `-m "not slow"` skips them on a quick local run
    for item in items:
        if Path(str(item.fspath)).parent.name == "e2e":
            item.add_marker(pytest.mark.slow)


os.environ.setdefault("HF_HUB_OFFLINE", "1")
