from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.conftest import BACKENDS, fresh_database

ADMIN_TOKEN = "test-admin-token-5f1c"
BOT_TOKEN = "test-bot-token-9a2e"


@pytest.fixture(scope="module", params=BACKENDS)
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path
           ) -> Iterator[TestClient]:
    """The real app on a migrated database with the demo KB, the index watcher polling every 0.2 s."""
    gen = fresh_database(request.param, tmp_path_factory.mktemp("db"))
    url = next(gen)
    settings = Settings(HOTLINE_DATA_DIR=shared_data_dir, DATABASE_URL=url, HOTLINE_ADMIN_TOKEN=ADMIN_TOKEN,
                        HOTLINE_BOT_TOKEN=BOT_TOKEN,
                        HOTLINE_INDEX_POLL_SECONDS=0.2, KB_ENCODER="static")
    with TestClient(create_app(settings)) as c:
        c.headers["X-Backend"] = request.param
        yield c
    next(gen, None)


def bot() -> dict[str, str]:
    return {"Authorization": f"Bearer {BOT_TOKEN}"}


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def make_token(client: TestClient, role: str, unit: str | None = None) -> dict[str, str]:
    r = client.post("/api/v1/auth/tokens", json={"name": f"{role}-{unit}", "role": role, "unit": unit},
                    headers=admin())
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
