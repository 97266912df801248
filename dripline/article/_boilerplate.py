"""Recognising page furniture that web pages mix into an article's text.

Copying an article out of a browser brings along advertisement markers, "Related
Articles" blocks, share and subscribe prompts, bylines and navigation lines. None
of it belongs in an email, wherever it appears.
"""

from __future__ import annotations

import re

__all__ = ["is_boilerplate", "is_link_list_marker"]

_AD_MARKER = re.compile(
    r"^[\s\-–—_*=|\[\](){}]*(?:advertisements?|advert|ad|ads|sponsored(?: content)?|"
    r"promoted|story continues below(?: advertisement)?|continue reading below)"
    r"[\s\-–—_*=|\[\](){}:.]*$",
    re.IGNORECASE,
)
# Whole lines that are page furniture, compared case-insensitively without punctuation.
_FURNITURE = {
    "related articles", "related posts", "related stories", "related", "latest articles",
    "latest posts", "latest news", "recent posts", "popular posts", "most popular",
    "you may also like", "you might also like", "recommended", "recommended for you",
    "more from this author", "read more", "read next", "more stories",
    "share this", "share this article", "share this post", "share this story", "share",
    "share on facebook", "share on twitter", "share on x", "share on linkedin", "tweet",
    "pin it", "email this", "print", "print this article", "copy link",
    "subscribe", "subscribe now", "subscribe to our newsletter", "sign up for our newsletter",
    "join our newsletter", "get our newsletter", "follow us", "leave a comment",
    "leave a reply", "comments", "no comments", "0 comments", "skip to content",
    "skip to main content", "back to top", "menu", "search", "home", "sign in", "log in",
    "login", "register", "previous article", "next article", "previous post", "next post",
    "table of contents", "contents", "facebook", "twitter", "linkedin", "pinterest",
    "instagram", "whatsapp", "reddit", "cookie settings", "accept cookies",
}  # fmt: skip
_LINK_LIST_MARKERS = {
    "related articles", "related posts", "related stories", "latest articles",
    "latest posts", "latest news", "recent posts", "popular posts", "most popular",
    "you may also like", "you might also like", "recommended", "recommended for you",
    "more from this author", "read next", "more stories",
}  # fmt: skip
_FURNITURE_PREFIX = re.compile(
    r"^(?:share this (?:article|post|story) on|subscribe to|sign up for (?:our|the) newsletter|"
    r"follow us on|tags?:|filed under:?|posted in:?|categories:|photo(?: credit)?:|"
    r"image(?: credit| source)?:|source:\s*(?:shutterstock|getty|istock|unsplash)|"
    r"this (?:article|post) (?:may contain|contains) affiliate links|we may earn a commission)",
    re.IGNORECASE,
)
# "By Jane Doe", "By Jane Doe | Updated March 3, 2024", "Published 3 March 2024", "5 min read".
_BYLINE = re.compile(
    r"^(?:(?:written |reviewed |medically reviewed )?by\s+[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,3}"
    r"(?:\s*[|,•·–—-]\s*.{0,60})?|(?:published|updated|last updated|posted)(?: on)?:?\s+.{0,40}"
    r"\d{4}.{0,20}|\d{1,2}\s*min(?:ute)?s?\s+read)$",
    re.IGNORECASE,
)
# Breadcrumbs and menus: three or more short items joined by separators.
_NAV_SEPARATORS = re.compile(r"\s+(?:[|›»>/•·]|&gt;|::)\s+")
_NAV_ARROW = re.compile(r"^(?:[«‹<←]\s*\S.{0,40}|.{0,40}\S\s*[»›>→])$")


def _key(line: str) -> str:
    return re.sub(r"[^\w\s]", "", line).strip().lower()


def is_link_list_marker(line: str) -> bool:
    """A heading like "Related Articles" that introduces a list of links to other pages."""
    return _key(line) in _LINK_LIST_MARKERS


def is_boilerplate(line: str) -> bool:
    """True for a line of page furniture: an ad marker, share prompt, byline or navigation."""
    text = " ".join(line.split())
    if not text:
        return False
    if _AD_MARKER.match(text) or _key(text) in _FURNITURE or _FURNITURE_PREFIX.match(text):
        return True
    if len(text) <= 120 and _BYLINE.match(text):
        return True
    items = _NAV_SEPARATORS.split(text)
    if len(items) >= 3 and all(0 < len(item.split()) <= 4 for item in items):
        return True
    return len(text) <= 45 and bool(_NAV_ARROW.match(text)) and not text.endswith("?")
