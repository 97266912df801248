"""HTML email bodies to a plain-text alternative that reads well.

Headings are marked with ``##``, links read "text (url)", lists keep their
bullets or numbers, table rows are one line each with cells separated by `` | ``,
hard breaks (``<br>``) stay line breaks, quotes are marked ``>`` per level, and
paragraphs are separated by blank lines. Lines are not wrapped here: wrapping is
:mod:`dripline._flowed`'s job, done on the text as a whole (layout included).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_SPACE = re.compile(r"[ \t\n\r\f]+")
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "blockquote",
        "pre",
        "table",
        "tr",
        "hr",
        "section",
        "article",
        "header",
        "footer",
    }
)
_CELLS = frozenset({"td", "th"})
_BREAK = "\x00"  # a <br>, kept through white-space collapsing
_AROUND_BREAK = re.compile(" ?\x00 ?")
_SKIP = frozenset({"style", "script", "head", "title"})


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []  # (text, kind: "item", "row" or "")
        self.cells = 0  # cells opened in the current table row
        self.inline: list[str] = []
        self.prefix = ""
        self.lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self.links: list[tuple[str, int]] = []  # (href, start position in inline)
        self.skip_depth = 0
        self.pre_depth = 0
        self.quote_depth = 0

    def flush(self) -> None:
        raw = "".join(self.inline)
        if self.pre_depth:
            text = raw.strip("\n").replace(_BREAK, "\n")
        else:
            text = _AROUND_BREAK.sub("\n", _SPACE.sub(" ", raw).strip(" " + _BREAK))
            text = text.strip("\n")
        if text:
            is_item = self.prefix.lstrip().startswith("-") or self.prefix[:1].isdigit()
            kind = "item" if is_item and self.lists else "row" if self.cells else ""
            # Lines after a hard break line up under the item's text.
            lines = text.split("\n")
            text = "\n".join([lines[0]] + [" " * len(self.prefix) + ln for ln in lines[1:]])
            text = self.prefix + text
            if self.quote_depth:
                quote = ">" * self.quote_depth
                text = "\n".join(f"{quote} {ln}" if ln else quote for ln in text.split("\n"))
            self.blocks.append((text, kind))
        self.inline = []
        self.prefix = ""
        self.cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if tag in _BLOCKS:
            self.flush()
        if tag in _CELLS:
            if self.cells:
                self.inline.append(" | ")
            self.cells += 1
        attributes = dict(attrs)
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.prefix = "#" * max(2, int(tag[1])) + " "
        elif tag in ("ul", "ol"):
            self.lists.append([tag == "ol", 0])
        elif tag == "li" and self.lists:
            current = self.lists[-1]
            current[1] += 1
            indent = "  " * (len(self.lists) - 1)
            self.prefix = indent + (f"{current[1]}. " if current[0] else "- ")
        elif tag == "blockquote":
            self.quote_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "br":
            self.inline.append(_BREAK)
        elif tag == "hr":
            self.blocks.append(("----", ""))
        elif tag == "img":
            alt = (attributes.get("alt") or "").strip()
            if alt:
                self.inline.append(f"[{alt}]")
        elif tag == "a":
            self.links.append((attributes.get("href") or "", len(self.inline)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = _SPACE.sub(" ", "".join(self.inline[start:])).strip()
            target = href.removeprefix("mailto:")
            if href and target != label and not href.startswith("#"):
                self.inline.append(f" ({target})" if label else target)
            return
        if tag in ("ul", "ol") and self.lists:
            self.flush()
            self.lists.pop()
        elif tag == "blockquote":
            self.flush()
            self.quote_depth = max(0, self.quote_depth - 1)
        elif tag == "pre":
            self.flush()
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag in _BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.inline.append(data.replace(_BREAK, ""))


def html_to_text(fragment: str) -> str:
    """Plain text for an HTML fragment: blocks separated by blank lines, a final newline."""
    writer = _TextWriter()
    writer.feed(fragment)
    writer.close()
    writer.flush()
    parts: list[str] = []
    for index, (text, kind) in enumerate(writer.blocks):
        if index:
            # Items of one list and rows of one table stay together; the rest are paragraphs.
            parts.append("\n" if kind and kind == writer.blocks[index - 1][1] else "\n\n")
        parts.append(text)
    return "".join(parts) + "\n"
