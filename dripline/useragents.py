"""User-agent classes for clicks and opens: people's browsers and mail apps apart from
link scanners, mail-security gateways, image proxies and scripts.

Only the class is stored, never the string (nor the IP address). The lists follow what
vendors document for their crawlers (Microsoft Defender Safe Links and BingPreview,
Proofpoint URL Defense, Mimecast, Barracuda, Google's and Yahoo's image proxies) and
the usual HTTP libraries. A class in :data:`MACHINE_CLASSES` makes a click a machine
click; so does a click within :data:`MACHINE_CLICK_SECONDS` of delivery, since a person
does not open and click an email that fast but a gateway scanning it on arrival does.
"""

from __future__ import annotations

import re

__all__ = ["MACHINE_CLASSES", "MACHINE_CLICK_SECONDS", "classify_user_agent", "is_machine"]

MACHINE_CLICK_SECONDS = 10.0

BROWSER, MAIL_APP, PROXY, SCANNER, SCRIPT, NONE, OTHER = (
    "browser",
    "mail-app",
    "proxy",
    "scanner",
    "script",
    "none",
    "other",
)
MACHINE_CLASSES = frozenset({PROXY, SCANNER, SCRIPT, NONE})

# Checked in this order: a proxy or scanner often also says "Mozilla/5.0".
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (PROXY, re.compile(r"GoogleImageProxy|ggpht\.com|YahooMailProxy|Yahoo! Slurp", re.I)),
    (
        SCANNER,
        re.compile(
            r"BingPreview|SafeLinks|Microsoft Office Existence Discovery|Proofpoint|"
            r"Mimecast|Barracuda|IronPort|Cisco|Symantec|TrendMicro|Trend Micro|Forcepoint|"
            r"Zscaler|Sophos|FortiGuard|Avanan|Check ?Point|Cloudmark|Mail\.ru_Bot|"
            r"SpamAssassin|HeadlessChrome|PhantomJS|Slackbot|facebookexternalhit|"
            r"\b(?:bot|crawler|spider|preview|scanner)\b",
            re.I,
        ),
    ),
    (
        SCRIPT,
        re.compile(
            r"^(?:curl|Wget|python-requests|python-httpx|Python-urllib|aiohttp|Go-http-client|"
            r"okhttp|Java|libwww-perl|node-fetch|axios|Ruby|PHP)\b",
            re.I,
        ),
    ),
    (MAIL_APP, re.compile(r"Thunderbird|Outlook|Microsoft Office|AppleMail|Airmail", re.I)),
    (BROWSER, re.compile(r"Mozilla/|Chrome/|Safari/|Firefox/|Opera", re.I)),
)


def classify_user_agent(user_agent: str | None) -> str:
    """The class of a User-Agent header (RFC 9110 10.1.5): one of browser, mail-app, proxy,
    scanner, script, none (no header) or other."""
    text = (user_agent or "").strip()
    if not text:
        return NONE
    for name, pattern in _PATTERNS:
        if pattern.search(text):
            return name
    return OTHER


def is_machine(user_agent_class: str, seconds_after_delivery: float | None) -> bool:
    """True for a machine's click: a machine class, or within seconds of delivery.

    ``seconds_after_delivery`` is None when the delivery has no send time.
    """
    if user_agent_class in MACHINE_CLASSES:
        return True
    # Either side of the send time: a relay clock a little ahead must not make it a person.
    return (
        seconds_after_delivery is not None and abs(seconds_after_delivery) < MACHINE_CLICK_SECONDS
    )
