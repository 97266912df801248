"""Markdown email bodies to HTML, with Jinja expressions carried through untouched.

Marketing staff write Markdown that may hold Jinja (``{{ subscriber.first_name }}``).
Markdown must not see the Jinja (it would escape quotes or percent-encode braces
in links) and Jinja must not see subscriber values as Markdown, so the Jinja tags
are swapped for inert placeholders, Markdown runs, then the tags go back.
Subscriber values are substituted later, into HTML, where they are only text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from markdown_it import MarkdownIt

from ._hrefs import rewrite_hrefs

__all__ = ["OPEN_PIXEL", "add_link_tracking", "markdown_to_html_template", "track_links"]

_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_PLACEHOLDER = re.compile(r"dljinja(\d+)q")
_LONE_BLOCK_TAG = re.compile(r"<p>(dljinja\d+q)</p>\n?")

_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
_markdown.enable("table").enable("strikethrough")


def markdown_to_html_template(source: str) -> str:
    """Markdown (with Jinja tags) to an HTML Jinja template (the same tags, now in HTML)."""
    tags: list[str] = []

    def protect(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return f"dljinja{len(tags) - 1}q"

    rendered = _markdown.render(_JINJA_TAG.sub(protect, source))

    def restore(match: re.Match[str]) -> str:
        return tags[int(match.group(1))]

    # A {% if %} alone on its line must not leave an empty paragraph around it.
    def unwrap(match: re.Match[str]) -> str:
        tag = tags[int(match.group(1)[7:-1])]
        return match.group(0) if tag.startswith("{{") else match.group(1)

    rendered = _LONE_BLOCK_TAG.sub(unwrap, rendered)
    return _PLACEHOLDER.sub(restore, rendered)


def _tag_url(url: str, params: Mapping[str, str]) -> str:
    """``url`` with the campaign's parameters appended; its own query is kept byte for byte.

    Decoding and re-encoding the query would turn ``%25`` into a bare ``%`` and
    ``%7B%7B`` into ``{{`` (live template code), so only the new pairs are encoded.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not params:
        return url
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    # Existing parameters win: an author who set utm_content by hand meant it.
    extra = urlencode([(k, v) for k, v in params.items() if k not in present])
    if not extra:
        return url
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def add_link_tracking(body_html: str, params: Mapping[str, str]) -> str:
    """Add UTM parameters to every http(s) link of ``body_html``, keeping existing queries.

    Links are the real ``href`` attributes, in any spelling (:mod:`dripline._hrefs`).

    Links whose URL is a Jinja expression are left alone: their value is only known
    per subscriber.
    """
    if not params:
        return body_html

    def tag(url: str) -> str | None:
        if "{{" in url or "{%" in url:
            return None
        tagged = _tag_url(url, params)
        return html.escape(tagged, quote=True) if tagged != url else None

    return rewrite_hrefs(body_html, tag)


# The open-tracking image, last in the body; its URL is per delivery (see render.Recipient).
# The GIF is 1x1 itself: no height (Outlook handles height attributes badly; premailer
# would write one from the style).
OPEN_PIXEL = '\n<img src="{{ open_pixel_url }}" alt="" style="width:1px;border:0">'


def track_links(body_html: str) -> tuple[str, list[str]]:
    """Every http(s) link of ``body_html`` pointed at ``tracked_links[N]``; and the URLs.

    Returns the template (each link now ``{{ tracked_links[N] }}``) and the original URLs
    by N, in order of first appearance (a URL used twice keeps one N). Links whose URL is
    a Jinja expression (the unsubscribe link among them) are left alone: they are not
    the same for every recipient, so there is nothing to look up on the server.
    """
    urls: list[str] = []

    def point(url: str) -> str | None:
        if "{{" in url or "{%" in url or urlsplit(url).scheme.lower() not in ("http", "https"):
            return None
        if url not in urls:
            urls.append(url)
        return f"{{{{ tracked_links[{urls.index(url)}] }}}}"

    return rewrite_hrefs(body_html, point), urls
