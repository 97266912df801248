"""User-agent classes for clicks and opens: people's browsers and mail apps apart from
link scanners, mail-security gateways, image proxies and scripts.

Only the class is stored, never the string (nor the IP address). The lists follow what
vendors document for their crawlers (Microsoft Defender Safe Links and BingPreview,
Proofpoint URL Defense, Mimecast, Barracuda, Google's and Yahoo's image proxies) and
the usual HTTP libraries; crawlers and link unfurlers come from the ``crawlerdetect``
package (https://github.com/JayBizzle/Crawler-Detect list). A class in
:data:`MACHINE_CLASSES` makes a click a machine click; so does a click within
:data:`MACHINE_CLICK_SECONDS` of delivery, since a person does not open and click an
email that fast but a gateway scanning it on arrival does.

What cannot be classed either way counts as a person's click, but is reported apart as
"unclassified" (:data:`UNCLASSIFIED_CLASSES`): ``other`` (a non-empty agent no list
knows: a new app, an in-app browser) and ``headless`` (a Chromium that says
``HeadlessChrome``: a real browser engine following the link, driven by a program that
may be a test, an accessibility tool or a person's automation as well as a scanner).
Counting either as a machine would hide real people whenever a client is new; counting
them silently as people would hide scanners; so they count, and the report says how many
of the people's clicks rest on them. A missing or empty User-Agent is a machine: every
browser and mail app sends one. Scanners that use a headless browser on delivery
are caught by the time rule, whatever their agent says.
"""

from __future__ import annotations

import re

from crawlerdetect import CrawlerDetect

__all__ = [
    "MACHINE_CLASSES",
    "MACHINE_CLICK_SECONDS",
    "UNCLASSIFIED_CLASSES",
    "classify_user_agent",
    "is_machine",
]

MACHINE_CLICK_SECONDS = 10.0

BROWSER, MAIL_APP, PROXY, SCANNER, SCRIPT, CRAWLER, NONE, OTHER, HEADLESS = (
    "browser",
    "mail-app",
    "proxy",
    "scanner",
    "script",
    "crawler",
    "none",
    "other",
    "headless",
)
MACHINE_CLASSES = frozenset({PROXY, SCANNER, SCRIPT, CRAWLER, NONE})
# Counted as people's clicks, and reported apart ("unclassified"): see the module docstring.
UNCLASSIFIED_CLASSES = frozenset({OTHER, HEADLESS})

_PROXY = re.compile(r"GoogleImageProxy|ggpht\.com|YahooMailProxy|Yahoo! Slurp", re.I)
# Tokens only a scanner sends: matched anywhere.
_SCANNER_TOKENS = re.compile(
    r"BingPreview|SafeLinks|Microsoft Office Existence Discovery|PhantomJS|"
    r"Mail\.ru_Bot|SpamAssassin",
    re.I,
)
# Mail-security vendors' names are also ordinary words (Webex is "Cisco Webex", Sophos sells
# home products), so inside a real browser's string they count only as a product token
# ("Proofpoint/1.0"); in a string with no browser engine they count anywhere.
_VENDORS = (
    r"Proofpoint|Mimecast|Barracuda|IronPort|Cisco|Symantec|Trend ?Micro|Forcepoint|Zscaler|"
    r"Sophos|FortiGuard|Avanan|Check ?Point|Cloudmark"
)
_VENDOR_WORD = re.compile(rf"\b(?:{_VENDORS})\b", re.I)
_VENDOR_PRODUCT = re.compile(rf"(?:^|[\s;(])(?:{_VENDORS})[\w-]*/\d", re.I)
_BROWSER_ENGINE = re.compile(r"AppleWebKit/|Gecko/|Chrome/|Safari/|Firefox/|Edg/|Trident/", re.I)
_SCRIPT = re.compile(
    r"^(?:curl|Wget|python-requests|python-httpx|Python-urllib|aiohttp|Go-http-client|"
    r"okhttp|Java|libwww-perl|node-fetch|axios|Ruby|PHP|HTTPie|Apache-HttpClient)\b",
    re.I,
)
_MAIL_APP = re.compile(r"Thunderbird|Outlook|Microsoft Office|AppleMail|Airmail", re.I)
_BROWSER = re.compile(r"Mozilla/|Chrome/|Safari/|Firefox/|Opera", re.I)
_HEADLESS = re.compile(r"HeadlessChrome/", re.I)
# Search-engine crawlers and link unfurlers (Slack, Discord, LinkedIn, WhatsApp, Telegram...):
# the crawlerdetect package keeps the JayBizzle/Crawler-Detect list, far longer and better
# kept than a hand list; it matches tokens such as "bingbot" that a word-boundary regex missed.
_CRAWLERS = CrawlerDetect()


def classify_user_agent(user_agent: str | None) -> str:
    """The class of a User-Agent header (RFC 9110 10.1.5): one of browser, mail-app, proxy,
    scanner, script, crawler, headless (a Chromium saying ``HeadlessChrome``), none (no
    header, or an empty one) or other.

    Checked in this order, since a proxy, scanner or crawler often also says "Mozilla/5.0".
    """
    text = (user_agent or "").strip()
    if not text:
        return NONE
    if _PROXY.search(text):
        return PROXY
    if _SCANNER_TOKENS.search(text):
        return SCANNER
    in_browser = _BROWSER_ENGINE.search(text) is not None
    if _VENDOR_PRODUCT.search(text) or (not in_browser and _VENDOR_WORD.search(text)):
        return SCANNER
    if _SCRIPT.search(text):
        return SCRIPT
    # Before the crawler list, which counts Outlook's own strings as crawlers.
    if _MAIL_APP.search(text):
        return MAIL_APP
    if _HEADLESS.search(text):  # before the crawler list, which has HeadlessChrome too
        return HEADLESS
    if _CRAWLERS.isCrawler(text):
        return CRAWLER
    if _BROWSER.search(text):
        return BROWSER
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
