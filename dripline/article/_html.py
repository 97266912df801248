"""Saved web pages: ``<h1>`` title, ``<h2>`` (or the dominant level) sections, text as Markdown.

Page furniture goes first (navigation, header, footer, aside, scripts, forms,
bylines, ad and share blocks, found by tag and by class/id), then the article
element's blocks are converted: links, lists and emphasis become Markdown.
"""

from __future__ import annotations

import re
from pathlib import Path

import lxml.html
from lxml import etree
from lxml.html import HtmlElement

from ._boilerplate import is_boilerplate, is_link_list_marker
from ._headings import strip_numbering
from ._model import Article, ArticleError, Section
from ._wording import plain_text

__all__ = ["parse_html"]

_DROPPED_TAGS = (
    "nav", "header", "footer", "aside", "script", "style", "noscript", "form", "iframe",
    "button", "input", "select", "textarea", "svg", "template", "object", "embed", "figure",
    "img", "picture", "video", "audio", "canvas", "dialog", "menu",
)  # fmt: skip
# class/id words that mark furniture: "ad-slot", "share-buttons", "byline", "related-posts"...
_FURNITURE_WORDS = re.compile(
    r"(?:^|[\s_-])(?:ads?|advert|advertisement|adslot|ad-container|sponsor(?:ed)?|promo|"
    r"banner|share|sharing|social|newsletter|subscribe|subscription|signup|related|"
    r"recommended|byline|author|breadcrumbs?|comments?|cookie|popup|modal|sidebar|"
    r"toc|table-of-contents|meta|tags|widget|outbrain|taboola)(?:$|[\s_-])",
    re.IGNORECASE,
)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = frozenset(("p", "ul", "ol", "blockquote", "pre", "table", "dl", *_HEADINGS))
_TITLE_SEPARATOR = re.compile(r"\s+[|–—·:]\s+|\s+-\s+")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]])")


def _is_furniture(element: HtmlElement) -> bool:
    if element.tag in _DROPPED_TAGS:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    if element.get("role") in ("navigation", "banner", "contentinfo", "complementary"):
        return True
    marks = f"{element.get('class', '')} {element.get('id', '')}"
    return bool(_FURNITURE_WORDS.search(marks))


def _drop_furniture(root: HtmlElement) -> None:
    total = len(root.text_content()) or 1
    doomed = [
        el
        for el in root.iterdescendants()
        if isinstance(el.tag, str)
        and _is_furniture(el)
        # A wrapper holding most of the article ("content-with-sidebar") is not furniture,
        # whatever its class says; a real nav/aside tag always is.
        and (el.tag in _DROPPED_TAGS or len(el.text_content()) * 2 < total)
    ]
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()  # keeps the tail text, which belongs to the parent


def _text(text: str | None) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", text or ""))


def _inline(element: HtmlElement) -> str:
    """An element's content as one line of Markdown: links, emphasis and code kept."""
    parts = [_text(element.text)]
    for child in element:
        if not isinstance(child.tag, str):  # comments, processing instructions
            parts.append(_text(child.tail))
            continue
        inner = _inline(child).strip()
        tag = child.tag
        if tag == "br":
            parts.append("\n")
        elif not inner:
            pass
        elif tag == "a" and (href := child.get("href") or "").startswith(
            ("http://", "https://", "mailto:")
        ):
            parts.append(f"[{inner}]({href.replace(' ', '%20')})")
        elif tag in ("strong", "b"):
            parts.append(f"**{inner}**")
        elif tag in ("em", "i", "cite"):
            parts.append(f"*{inner}*")
        elif tag == "code":
            parts.append(f"`{child.text_content()}`")
        else:
            parts.append(_inline(child))
        parts.append(_text(child.tail))
    return "".join(parts)


def _clean(line: str) -> str:
    return "\n".join(" ".join(part.split()) for part in line.split("\n")).strip()


def _list(element: HtmlElement, depth: int = 0) -> str:
    lines: list[str] = []
    number = 1
    for item in element.iterchildren("li"):
        nested = [c for c in item if c.tag in ("ul", "ol")]
        for sub in nested:
            sub.drop_tree()  # detached from the item, converted below as its own list
        marker = f"{number}." if element.tag == "ol" else "-"
        text = _clean(_inline(item)).replace("\n", " ")
        if text:
            lines.append(f"{'   ' * depth}{marker} {text}")
            number += 1
        lines.extend(_list(sub, depth + 1) for sub in nested)
    return "\n".join(line for line in lines if line)


def _markdown_block(element: HtmlElement) -> str:
    if element.tag in ("ul", "ol"):
        return _list(element)
    if element.tag == "blockquote":
        return "\n".join(f"> {line}" for line in _clean(_inline(element)).split("\n"))
    if element.tag == "pre":
        return "```\n" + element.text_content().strip("\n") + "\n```"
    if element.tag in _HEADINGS:
        return "#" * int(element.tag[1]) + " " + _clean(_inline(element)).replace("\n", " ")
    return _clean(_inline(element))


def _holds_blocks(element: HtmlElement) -> bool:
    return any(isinstance(el.tag, str) and el.tag in _BLOCKS for el in element.iterdescendants())


def _walk(element: HtmlElement, out: list[tuple[HtmlElement, str]]) -> None:
    """Collect (element, Markdown) for each block in document order."""
    loose = _clean(_text(element.text))  # text directly inside a <div>: a paragraph too
    if loose:
        out.append((element, loose))
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag in _BLOCKS:
            out.append((child, _markdown_block(child)))
        elif not _holds_blocks(child):  # a <div> or <span> of running text: one paragraph
            paragraph = _clean(_inline(child))
            if paragraph:
                out.append((child, paragraph))
        else:
            _walk(child, out)
        tail = _clean(_text(child.tail))
        if tail:
            out.append((element, tail))


def _content_root(document: HtmlElement) -> HtmlElement:
    """The element holding the article: the biggest <article>, else <main>, else <body>."""
    for query in ("//article", "//main", "//*[@role='main']", "//body"):
        found = [el for el in document.xpath(query) if isinstance(el, HtmlElement)]
        if found:
            return max(found, key=lambda el: len(el.text_content()))
    return document


def parse_html(text: str, source: Path) -> Article:
    """Parse a saved web page into an :class:`Article`."""
    try:
        document = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as err:
        raise ArticleError(f"cannot parse the HTML: {err}", path=source) from err
    # The title is read before furniture goes: pages often put the <h1> inside a <header>.
    h1 = next(
        (h for h in document.iter("h1") if isinstance(h, HtmlElement) and h.text_content().strip()),
        None,
    )
    title_tag = next((t for t in document.iter("title") if isinstance(t, HtmlElement)), None)
    title_element = h1 if h1 is not None else title_tag
    title = " ".join(title_element.text_content().split()) if title_element is not None else ""
    if h1 is None:
        # "<title>7 Reasons to Keep Houseplants | Green Living Daily</title>": the site name
        # is the shorter part.
        title = max(_TITLE_SEPARATOR.split(title), key=len).strip()
    if not title:
        raise ArticleError("no title: the page has neither an <h1> nor a <title>", path=source)
    if h1 is not None:
        h1.drop_tree()
    root = _content_root(document)
    _drop_furniture(root)

    blocks: list[tuple[HtmlElement, str]] = []
    _walk(root, blocks)
    levels = [int(el.tag[1]) for el, md in blocks if el.tag in _HEADINGS[1:]]
    if not levels:
        raise ArticleError("no sections: the page has no <h2> (or other) headings", path=source)
    level = 2 if 2 in levels else max(set(levels), key=lambda lv: (levels.count(lv), -lv))
    intro: list[str] = []
    sections: list[tuple[str, int | None, list[str]]] = []
    skipping = False  # inside a "Related Articles" part of the page
    for element, markdown in blocks:
        if element.tag in _HEADINGS and int(element.tag[1]) <= level:
            heading = markdown.lstrip("#").strip()
            words = plain_text(heading)
            skipping = is_link_list_marker(words) or is_boilerplate(words)
            if not skipping:
                line = element.sourceline if isinstance(element.sourceline, int) else None
                sections.append((strip_numbering(words)[1], line, []))
            continue
        if skipping or not markdown or is_boilerplate(plain_text(markdown)):
            continue
        (sections[-1][2] if sections else intro).append(markdown)
    return Article(
        title=title,
        intro=tuple(intro),
        sections=tuple(Section(h, tuple(body), line) for h, line, body in sections),
        source=source,
        format="html",
    )
