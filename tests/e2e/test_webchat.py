"""The web chat in a real browser: /chat from the core API, answers from the running Rasa stack.

`stack` (tests/e2e/conftest.py) has `api_url` and `rasa_url` of running servers. The browser is the
system Chromium (apt-get install chromium); Playwright never downloads one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def page() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():  # fail loudly, never skip
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            yield browser.new_page(locale="zh-CN")
        finally:
            browser.close()


def test_webchat_answers_a_housing_fund_question(stack: Any, page: Any) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{stack.api_url}/chat")
    page.fill("#input", "居住证怎么申请")
    page.click("#send", timeout=30_000)  # enabled once the socket.io session is confirmed
    sync_api.expect(page.locator(".msg.user").last).to_have_text("居住证怎么申请")
    answer = page.locator(".msg.bot", has_text="政策依据").first
    sync_api.expect(answer).to_be_visible(timeout=60_000)
    assert not page.locator("#notice.show").is_visible(), page.locator("#notice").inner_text()
    assert errors == []
