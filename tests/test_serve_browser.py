"""The sign-up pages in headless Chromium, as a visitor uses them, over a real uvicorn server.

Debian's Chromium driven by Playwright (``CHROMIUM_EXECUTABLE``, default
/usr/bin/chromium; ``.ci/chromium.sh`` installs it). Skipped only when that
browser is missing.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from dispatch_pass import dispatch_pass
from serve_support import SLUG, Served, confirm_path, list_unsubscribe_path, make_served
from sqlalchemy import select

from dripline.campaign import load_campaign
from dripline.store import Delivery, Subscriber, read_transaction

CHROMIUM = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
CHROMIUM_ARGS = os.environ.get(
    "CHROMIUM_ARGS", "--no-sandbox --disable-gpu --disable-dev-shm-usage"
)

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (run .ci/chromium.sh)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Served, str]]:
    """The app under a real uvicorn on loopback; its links point at that server."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    served = make_served(tmp_path, sqlite_url, "browser")
    served.settings = replace(served.settings, base_url=base)
    server = uvicorn.Server(
        uvicorn.Config(served.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield served, base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        served.close()


def test_sign_up_confirm_and_unsubscribe_in_a_browser(browser, live) -> None:
    served, base = live
    context = browser.new_context(timezone_id="Asia/Tokyo", locale="en-GB")
    page = context.new_page()
    problems: list[str] = []
    # Script errors and CSP violations; the 400 of the re-shown form is expected.
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.on(
        "console",
        lambda m: (
            problems.append(m.text) if m.type == "error" and "status of 400" not in m.text else None
        ),
    )
    try:
        page.goto(f"{base}/subscribe/{SLUG}")
        # The page's script (allowed by its CSP hash) filled in the browser's zone.
        assert page.input_value("#timezone") == "Asia/Tokyo"
        page.get_by_label("Email address").fill("kenji@example.com")
        page.get_by_label("First name").fill("Kenji")
        page.get_by_role("button", name="Subscribe").click()
        # Without the consent box ticked: the form comes back with the values and a message.
        assert page.locator("#consent-error").inner_text().startswith("Tick the box")
        assert page.input_value("#email") == "kenji@example.com"
        assert page.input_value("#timezone") == "Asia/Tokyo"
        page.get_by_role("checkbox").check()
        page.get_by_role("button", name="Subscribe").click()
        assert page.locator("h1").inner_text() == "Check your inbox"

        (confirmation,) = served.emails()
        page.goto(base + confirm_path(confirmation, base))
        page.get_by_role("button", name="Confirm my subscription").click()
        assert page.locator("h1").inner_text() == "You are subscribed"
        engine = served.apps[0].state.service.engine
        with read_transaction(engine) as conn:
            row = conn.execute(select(Subscriber.__table__)).one()
        assert (row.status, row.timezone, row.first_name) == ("active", "Asia/Tokyo", "Kenji")

        campaigns = {SLUG: load_campaign(served.settings.campaigns_dir / SLUG)}
        dispatch_pass(engine, served.settings, campaigns, served.clock.now)
        page.goto(base + list_unsubscribe_path(served.emails()[-1], base))
        assert page.locator("h1").inner_text() == "Unsubscribe?"
        page.get_by_role("button", name="Unsubscribe").click()
        assert page.locator("h1").inner_text() == "You are unsubscribed"
        d = Delivery.__table__
        with read_transaction(engine) as conn:
            statuses = [s for (s,) in conn.execute(select(d.c.status).order_by(d.c.step))]
        assert statuses == ["sent"] + ["cancelled"] * 5
        assert problems == []
    finally:
        context.close()
