"""User-agent classes: people's browsers and mail apps apart from scanners and proxies."""

from __future__ import annotations

import pytest

from dripline.useragents import MACHINE_CLICK_SECONDS, classify_user_agent, is_machine

CASES = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64) AppleWebKit/537.36 Chrome/120.0", "browser"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) AppleWebKit/605.1.15 Mobile", "browser"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Thunderbird/120.0", "mail-app"),
    ("Mozilla/5.0 Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", "proxy"),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "proxy"),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 BingPreview/1.0b", "scanner"),
    ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36", "scanner"),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "scanner"),
    ("Proofpoint URL Defense", "scanner"),
    ("curl/8.5.0", "script"),
    ("python-requests/2.31", "script"),
    ("", "none"),
    (None, "none"),
    ("SomethingNew/1.0", "other"),
]  # fmt: skip


@pytest.mark.parametrize(("agent", "expected"), CASES)
def test_classes(agent: str | None, expected: str) -> None:
    assert classify_user_agent(agent) == expected


def test_machine_clicks() -> None:
    assert is_machine("scanner", 3600) and is_machine("none", None)
    assert is_machine("browser", 2.0) and is_machine("browser", -2.0)  # a clock a bit ahead
    assert not is_machine("browser", MACHINE_CLICK_SECONDS + 1)
    assert not is_machine("other", 600) and not is_machine("mail-app", None)
