"""Accessibility checks on a rendered email, each a warning pointing at file and line.

- ``a11y-lang``: the ``<html>`` element names the language (screen readers pick their voice).
- ``a11y-contrast``: text colour against its background, from the inlined styles, below
  WCAG 2.1 AA (4.5:1; 3:1 for large text: 24px, or 18.66px bold; SC 1.4.3).
- ``a11y-link-text``: links whose text says nothing on its own ("click here", a bare URL;
  SC 2.4.4).
- ``a11y-heading-order``: a heading more than one level below the previous one (h2 -> h4).
- ``a11y-layout-table``: a table with no header cells or caption (so laid out, not data)
  without ``role="presentation"``, which screen readers would announce as a data table.

Alt text stays with the older ``img-alt`` check in ``dripline.lint``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import lxml.html

from ..findings import Finding
from ._css import contrast_ratio, declarations, is_transparent, parse_color
from ._locate import Locator

__all__ = ["accessibility_findings"]

_VAGUE_LINKS = frozenset(
    {
        "click here", "here", "click", "read more", "more", "learn more", "this", "link",
        "this link", "go", "continue", "details", "more info", "find out more", "see more",
    }
)  # fmt: skip
_BARE_URL = re.compile(r"^(https?://|www\.)\S+$", re.I)
_HEADING = re.compile(r"^h([1-6])$")
_BOLD_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "strong", "b", "th"})


@dataclass(frozen=True)
class _Style:
    """What an element's inline styles (and its ancestors') make of its text."""

    color: str | None
    background: str | None
    font_px: float
    bold: bool
    hidden: bool


def _px(value: str, inherited: float) -> float:
    match = re.fullmatch(r"([\d.]+)(px|pt|em|rem|%)?", value.strip().lower())
    if not match:
        return inherited
    number, unit = float(match.group(1)), match.group(2) or "px"
    return {"px": number, "pt": number * 4 / 3, "em": number * inherited, "rem": number * 16}.get(
        unit, number * inherited / 100
    )


def _styles(document: lxml.html.HtmlElement) -> Iterator[tuple[lxml.html.HtmlElement, _Style]]:
    """Every element with the colours, size and visibility it inherits from inline styles."""

    def walk(element: lxml.html.HtmlElement, parent: _Style) -> Iterator[tuple]:
        if not isinstance(element.tag, str):
            return
        style = {d.prop: d.value for d in declarations(element.get("style") or "")}
        background = style.get("background-color") or element.get("bgcolor")
        if background is None and "background" in style:
            first = style["background"].split()[0] if style["background"].split() else ""
            background = first if parse_color(first) or is_transparent(first) else None
        if background is not None and is_transparent(background):
            background = None  # the parent's background shows through
        weight = style.get("font-weight", "")
        size = _px(style["font-size"], parent.font_px) if "font-size" in style else parent.font_px
        hidden = (
            parent.hidden
            or style.get("display", "").startswith("none")
            or style.get("visibility") == "hidden"
            or style.get("opacity", "").strip() in ("0", "0.0")
            or size <= 1
            or (style.get("max-height", "").strip() in ("0", "0px") and "overflow" in style)
        )
        current = _Style(
            color=style.get("color", parent.color),
            background=background or parent.background,
            font_px=size,
            bold=weight in ("bold", "bolder")
            or (weight.isdigit() and int(weight) >= 700)
            or (parent.bold and weight not in ("normal", "400"))
            or element.tag in _BOLD_TAGS,
            hidden=hidden,
        )
        yield element, current
        for child in element:
            yield from walk(child, current)

    body = document.find("body")
    root = body if body is not None else document
    yield from walk(root, _Style(None, None, 16.0, False, False))


def _own_text(element: lxml.html.HtmlElement) -> str:
    text = (element.text or "") + "".join(child.tail or "" for child in element)
    return " ".join(text.split())


def _contrast(document: lxml.html.HtmlElement, locator: Locator, add) -> None:
    for element, style in _styles(document):
        text = _own_text(element)
        if style.hidden or not text or style.color is None:
            continue
        fg = parse_color(style.color)
        bg = parse_color(style.background or "#ffffff")  # unstyled mail is black on white
        if fg is None or bg is None:
            continue
        ratio = contrast_ratio(fg, bg)
        large = style.font_px >= 24 or (style.bold and style.font_px >= 18.66)
        needed = 3.0 if large else 4.5
        if ratio < needed:
            color = re.escape(style.color)
            # The text itself first: the same colour may be declared on several lines.
            line = locator.find((re.escape(text[:40]), rf"color\s*:\s*{color}"))
            sample = text if len(text) <= 40 else text[:40] + "…"
            add(
                "a11y-contrast",
                f"text colour {style.color} on {style.background or 'white'} has contrast "
                f"{ratio:.2f}:1, below WCAG AA {needed:g}:1 for {'large' if large else 'normal'} "
                f"text ({sample!r})",
                line,
            )


def _link_text(document: lxml.html.HtmlElement, locator: Locator, add) -> None:
    for link in document.iter("a"):
        label = " ".join(link.text_content().split())
        label += " ".join(img.get("alt") or "" for img in link.iter("img"))
        label = label.strip()
        spoken = re.sub(r"[^\w\s]", "", label).strip().lower()
        if not label:
            continue  # no text at all: the img-alt check already speaks for image links
        vague = spoken in _VAGUE_LINKS
        if vague or _BARE_URL.match(label):
            why = "says nothing on its own" if vague else "is a bare URL"
            place = locator.find(
                (rf"\[{re.escape(label)}\]", rf">\s*{re.escape(label)}", re.escape(label))
            )
            add(
                "a11y-link-text",
                f"link text {label!r} {why}: name where it goes (screen readers list links "
                "out of context)",
                place,
            )


def _headings(document: lxml.html.HtmlElement, locator: Locator, add) -> None:
    previous = 0
    for element in document.iter():
        match = _HEADING.match(element.tag) if isinstance(element.tag, str) else None
        if match is None:
            continue
        level = int(match.group(1))
        if previous and level > previous + 1:
            text = " ".join(element.text_content().split())
            place = locator.find(
                (
                    rf"^#{{{level}}}\s+{re.escape(text[:30])}",
                    rf"<h{level}\b[^>]*>\s*{re.escape(text[:30])}",
                    rf"<h{level}\b",
                )
            )
            add(
                "a11y-heading-order",
                f"heading h{level} {text!r} follows h{previous}: it skips h{previous + 1}",
                place,
            )
        previous = level


def _layout_tables(document: lxml.html.HtmlElement, locator: Locator, add) -> None:
    for table in document.iter("table"):
        if (table.get("role") or "").lower() in ("presentation", "none"):
            continue
        if table.find(".//th") is not None or table.find("caption") is not None:
            continue  # a data table: it should be announced as one
        place = locator.find((r"<table(?![^>]*\brole\s*=)",))
        add(
            "a11y-layout-table",
            'layout table without role="presentation": screen readers announce its rows '
            "and columns",
            place,
        )


def accessibility_findings(
    document: lxml.html.HtmlElement, locator: Locator, step: int
) -> list[Finding]:
    """Warnings for what makes ``document`` hard to read or hear (see the module docstring)."""
    found: list[Finding] = []

    def add(rule: str, message: str, place: tuple) -> None:
        source, line = place
        finding = Finding("warning", message, source.path, line, step, rule)
        if finding not in found:
            found.append(finding)

    if not (document.get("lang") or "").strip():
        add(
            "a11y-lang",
            'the <html> element has no lang attribute (set lang = "..." in campaign.toml and '
            'keep lang="{{ campaign.lang }}" in the layout)',
            locator.find((r"<html\b",)),
        )
    _contrast(document, locator, add)
    _link_text(document, locator, add)
    _headings(document, locator, add)
    _layout_tables(document, locator, add)
    return found
