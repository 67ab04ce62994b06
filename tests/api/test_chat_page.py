"""GET /chat and its socket.io client. No lifespan: the page needs neither the database nor the index."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routers import chat
from api.settings import Settings


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    settings = Settings(HOTLINE_DATA_DIR=tmp_path, HOTLINE_ADMIN_TOKEN="test-admin-token-chat",
                        HOTLINE_RASA_URL="https://bot.example.gov.cn:5005")
    return TestClient(create_app(settings, watch=False))


def test_chat_page_carries_the_socket_url(client: TestClient) -> None:
    r = client.get("/chat")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<meta name="hotline-rasa-url" content="https://bot.example.gov.cn:5005">' in r.text
    assert "{{RASA_URL}}" not in r.text
    assert "<title>12345 热线智能助手</title>" in r.text
    assert '<script src="/chat/socket.io.min.js"></script>' in r.text
    for element in ('id="input"', 'id="send"', 'id="messages"'):
        assert element in r.text
    assert not re.search(r'(src|href)="(https?:)?//', r.text)  # nothing loaded from another host (no CDN)


def test_the_socket_url_is_escaped_into_the_attribute(tmp_path: Path) -> None:
    settings = Settings(HOTLINE_DATA_DIR=tmp_path, HOTLINE_ADMIN_TOKEN="test-admin-token-chat",
                        HOTLINE_RASA_URL='http://x"><script>alert(1)</script>')
    r = TestClient(create_app(settings, watch=False)).get("/chat")
    assert "<script>alert(1)</script>" not in r.text
    assert 'content="http://x&quot;&gt;&lt;script&gt;' in r.text


def test_rasa_url_defaults_to_the_local_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOTLINE_RASA_URL", raising=False)
    assert Settings(HOTLINE_DATA_DIR=tmp_path).rasa_url == "http://127.0.0.1:5005"
    monkeypatch.setenv("HOTLINE_RASA_URL", "http://rasa:5005")
    assert Settings(HOTLINE_DATA_DIR=tmp_path).rasa_url == "http://rasa:5005"


def test_socket_io_client_is_served(client: TestClient) -> None:
    assert chat.SOCKET_IO_JS.is_file(), "run `npm install` in api/web (make setup)"
    r = client.get("/chat/socket.io.min.js")
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert r.text.startswith("/*!\n * Socket.IO v4.")


def test_missing_socket_io_client_is_a_clear_503(client: TestClient, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat, "SOCKET_IO_JS", tmp_path / "missing.js")
    r = client.get("/chat/socket.io.min.js")
    assert r.status_code == 503
    assert "make setup" in r.json()["detail"]
