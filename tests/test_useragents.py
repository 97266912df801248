"""User-agent classes: people's browsers and mail apps apart from scanners and proxies."""

from __future__ import annotations

import pytest

from dripline.useragents import (
    MACHINE_CLASSES,
    MACHINE_CLICK_SECONDS,
    classify_user_agent,
    is_machine,
)

CASES = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64) AppleWebKit/537.36 Chrome/120.0", "browser"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) AppleWebKit/605.1.15 Mobile", "browser"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Thunderbird/120.0", "mail-app"),
    ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)", "mail-app"),
    ("Mozilla/5.0 Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", "proxy"),
    ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", "proxy"),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 BingPreview/1.0b", "scanner"),
    # A real browser engine driven by a program: a person's click, reported as unclassified.
    ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36", "headless"),
    ("", "none"),
    ("   ", "none"),
    ("SomeNewMailApp/3.1 (iPhone)", "other"),
    ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "scanner"),
    ("Proofpoint URL Defense", "scanner"),
    ("curl/8.5.0", "script"),
    ("python-requests/2.31", "script"),
    ("", "none"),
    (None, "none"),
    ("SomethingNew/1.0", "other"),
]  # fmt: skip

# Crawlers and link unfurlers (chat apps fetching a pasted link's preview): never a person.
CRAWLERS = [
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Twitterbot/1.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp/2.23.20.0 A",
    "TelegramBot (like TwitterBot)",
    "Apache-HttpClient/4.5.14 (Java/17.0.2)",
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "HTTPie/3.2.2",
]


@pytest.mark.parametrize("agent", CRAWLERS)
def test_crawlers_and_unfurlers_are_machines(agent: str) -> None:
    kind = classify_user_agent(agent)
    assert kind in MACHINE_CLASSES, (agent, kind)
    assert is_machine(kind, 3600.0)  # even a day after delivery


@pytest.mark.parametrize(
    "agent",
    [
        # Webex's embedded browser: "Cisco" is a product word here, not a mail gateway.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/120.0 Safari/537.36 (Cisco Webex)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"
        " Sophos-Home-Portal",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0"
        " Safari/537.36 Edg/120.0 (Symantec Endpoint)",
    ],
)
def test_vendor_words_in_a_browser_are_a_person(agent: str) -> None:
    assert classify_user_agent(agent) == "browser"


@pytest.mark.parametrize(("agent", "expected"), CASES)
def test_classes(agent: str | None, expected: str) -> None:
    assert classify_user_agent(agent) == expected


def test_machine_clicks() -> None:
    assert is_machine("scanner", 3600) and is_machine("none", None)
    assert is_machine("browser", 2.0) and is_machine("browser", -2.0)  # a clock a bit ahead
    assert not is_machine("browser", MACHINE_CLICK_SECONDS + 1)
    assert not is_machine("other", 600) and not is_machine("mail-app", None)
    assert not is_machine("headless", 600) and is_machine("headless", 2.0)
