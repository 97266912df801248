"""The real ``href`` attributes of an HTML template's links, found by parsing, and rewritten.

Link tracking and UTM tagging must change exactly what a browser follows: the ``href``
of each ``<a>`` and ``<area>`` element, in any legal spelling (``HREF='...'``, unquoted,
spaces around ``=``), never ``data-href`` or a link inside a comment or ``<script>``,
and the rest of the template byte for byte (it is still a Jinja template, and the
Markdown renderer's output must not be re-serialised). ``dripline check`` also asks here
which links of a click-tracked step go out untracked (:func:`untracked_link_findings`):
those the layout or an included template adds, and URLs a Jinja expression makes per
subscriber (the server could not look them up; tracking them would be an open redirect).

:class:`html.parser.HTMLParser` finds the start tags (comments, CDATA, ``<script>`` and
``<style>`` skipped as a browser does); the attributes of each tag are then read with the
WHATWG tokenizer's attribute states (HTML Living Standard 13.2.5.32-13.2.5.39) so the
value's exact span is known. A repeated attribute is ignored by browsers (the first
wins), and so it is here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .findings import Finding

if TYPE_CHECKING:  # render imports this module (through markdown)
    from .render import CompiledStep

__all__ = ["Href", "find_hrefs", "rewrite_hrefs", "untracked_link_findings"]

_LINK_TAGS = frozenset({"a", "area"})
_SPACE = "\t\n\f\r "


@dataclass(frozen=True)
class Href:
    """One link's ``href``: ``url`` (character references decoded), its ``start``/``end``
    offsets in the template (the value with its quotes, if any) and its 1-based ``line``."""

    url: str
    start: int
    end: int
    line: int


class _StartTags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: list[tuple[int, int, str]] = []  # (line, column, start tag as written)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LINK_TAGS:
            line, column = self.getpos()
            self.found.append((line, column, self.get_starttag_text() or ""))


def _attributes(tag: str) -> list[tuple[str, int, int, str]]:
    """(lower-case name, value start, value end, raw value) of each attribute of ``tag``
    (``<name ...>`` as written); the span covers the quotes; a bare attribute has none."""
    found: list[tuple[str, int, int, str]] = []
    i, n = 1, len(tag)
    while i < n and tag[i] not in _SPACE + "/>":  # the tag name
        i += 1
    while i < n:
        while i < n and tag[i] in _SPACE + "/":
            i += 1
        if i >= n or tag[i] == ">":
            break
        start = i
        i += 1  # a name may start with "=" (a parse error, but part of the name)
        while i < n and tag[i] not in _SPACE + "/>=":
            i += 1
        name = tag[start:i].lower()
        j = i
        while j < n and tag[j] in _SPACE:
            j += 1
        if j >= n or tag[j] != "=":
            found.append((name, i, i, ""))
            continue
        j += 1
        while j < n and tag[j] in _SPACE:
            j += 1
        if j < n and tag[j] in "\"'":
            close = tag.find(tag[j], j + 1)
            close = n - 1 if close < 0 else close
            found.append((name, j, close + 1, tag[j + 1 : close]))
            i = close + 1
        else:
            k = j
            while k < n and tag[k] not in _SPACE + ">":
                k += 1
            found.append((name, j, k, tag[j:k]))
            i = k
    return found


def find_hrefs(template: str) -> list[Href]:
    """Every ``<a>``/``<area>`` ``href`` of ``template``, in document order."""
    parser = _StartTags()
    parser.feed(template)
    parser.close()
    line_starts = [0]
    line_starts += [i + 1 for i, c in enumerate(template) if c == "\n"]
    hrefs: list[Href] = []
    for line, column, text in parser.found:
        offset = line_starts[line - 1] + column
        for name, start, end, raw in _attributes(text):
            if name == "href":
                if start == end:  # a bare ``href``: nothing to follow (and it wins)
                    break
                where = offset + start
                line_no = line + text.count("\n", 0, start)
                hrefs.append(Href(html.unescape(raw), where, offset + end, line_no))
                break  # a repeated href is ignored by browsers
    return hrefs


def rewrite_hrefs(template: str, change: Callable[[str], str | None]) -> str:
    """``template`` with each link's ``href`` replaced by ``change(url)``.

    ``change`` gets the URL (references decoded) and returns the new value as HTML text
    (escaped, without quotes; it is written in double quotes), or None to keep it as is.
    """
    parts: list[str] = []
    done = 0
    for href in find_hrefs(template):
        value = change(href.url)
        if value is None:
            continue
        parts += [template[done : href.start], f'"{value}"']
        done = href.end
    parts.append(template[done:])
    return "".join(parts)


# A Markdown link or an href whose URL starts with a Jinja expression or holds one.
_MADE_BY_JINJA = re.compile(r"""\]\(\s*[^)\s]*\{[{%]|href\s*=\s*["']?[^"'\s>]*\{[{%]""", re.I)


def _line_of(path: Path, needle: str) -> int | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else None


def _where(compiled: CompiledStep, url: str) -> tuple[Path, int | None, str]:
    """(file, line, why) for an untracked link of the rendered step."""
    step = compiled.step
    needle = url.split("?")[0].split("#")[0]
    line = _line_of(step.path, needle)
    if line is not None:
        text = step.path.read_text(encoding="utf-8").splitlines()[line - 1]
        if "{{" in text or "{%" in text:
            return step.path, line, "its URL is made per subscriber by a Jinja expression"
        return step.path, line, "it is not a link of the step's body as the body is parsed"
    templates = compiled.renderer.templates_dir
    for path in sorted(templates.rglob("*")) if templates.is_dir() else []:
        if path.is_file() and path.suffix in (".html", ".htm", ".jinja", ".j2"):
            line = _line_of(path, needle)
            if line is not None:
                return path, line, f"it comes from {path.name}, not from the step's body"
    try:
        text = step.path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    match = _MADE_BY_JINJA.search(text)
    if match is not None:
        line = text.count("\n", 0, match.start()) + 1
        return step.path, line, "its URL is made per subscriber by a Jinja expression"
    return step.path, step.body_line, "it is not in the step's body as written"


def untracked_link_findings(
    compiled: CompiledStep, hrefs: list[str], unsubscribe_url: str
) -> list[Finding]:
    """Warnings for the http(s) ``hrefs`` of a rendered sample that are not tracked.

    ``hrefs`` are the rendered email's link URLs (references decoded); nothing is
    reported unless the campaign has ``[tracking] clicks = true``.
    """
    if not compiled.campaign.tracking.clicks:
        return []
    tracked = set(compiled.tracked_urls)
    found: list[Finding] = []
    for url in hrefs:
        if url in tracked or url == unsubscribe_url:
            continue
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            continue
        path, line, why = _where(compiled, url)
        shown = url if path != compiled.step.path or "Jinja" not in why else "a link"
        message = f"{shown} is not click-tracked: {why}"
        finding = Finding("warning", message, path, line, compiled.step.number, "untracked-link")
        if finding not in found:
            found.append(finding)
    return found
