"""Markdown drafts: ``#`` title, ``##`` sections, everything else kept as written.

Blocks are copied from the source lines (markdown-it-py only finds where they
are), so lists, links and emphasis reach the emails exactly as the author wrote
them. A horizontal rule after the last section starts the draft's footer, which
is dropped; so are page-furniture paragraphs and "Related Articles" sections.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from ._boilerplate import is_boilerplate, is_link_list_marker
from ._headings import strip_numbering
from ._model import Article, ArticleError, Section
from ._wording import plain_text

__all__ = ["parse_markdown"]

_FRONT_MATTER = re.compile(r"\A(---|\+\+\+)[ \t]*\n(.*?)\n\1[ \t]*(?:\n|\Z)", re.DOTALL)
_YAML_TITLE = re.compile(r"^title\s*:\s*(.+?)\s*$", re.MULTILINE)


@dataclass
class _Block:
    kind: str  # "heading", "hr" or "block"
    line: int  # 1-based
    text: str  # heading text, or the block's Markdown source
    level: int = 0  # heading level


@dataclass
class _Draft:
    title: str | None
    title_line: int | None
    blocks: list[_Block] = field(default_factory=list)


def _front_matter_title(fence: str, front: str, source: Path) -> str | None:
    """The ``title`` of ``+++`` TOML or ``---`` YAML front matter (YAML is only scanned)."""
    if fence == "+++":
        try:
            value = tomllib.loads(front).get("title")
        except tomllib.TOMLDecodeError as err:
            raise ArticleError(f"invalid TOML front matter: {err}", path=source, line=1) from err
        return value if isinstance(value, str) else None
    match = _YAML_TITLE.search(front)
    return match.group(1).strip("\"'") if match else None


def _scan(text: str, source: Path) -> _Draft:
    front_match = _FRONT_MATTER.match(text)
    offset = 0
    title = None
    if front_match:
        offset = text.count("\n", 0, front_match.end())
        title = _front_matter_title(front_match.group(1), front_match.group(2), source)
        text = text[front_match.end() :]
    lines = text.splitlines()
    draft = _Draft(title=title, title_line=1 if title else None)
    tokens: list[Token] = MarkdownIt("commonmark").parse(text)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.level != 0 or token.map is None or token.type.endswith("_close"):
            index += 1
            continue
        start, end = token.map
        line = start + 1 + offset
        if token.type == "heading_open":
            level = int(token.tag[1])
            content = " ".join(tokens[index + 1].content.split())
            draft.blocks.append(_Block("heading", line, content, level))
        elif token.type == "hr":
            draft.blocks.append(_Block("hr", line, ""))
        else:
            source_text = "\n".join(lines[start:end]).strip("\n")
            if source_text.strip():
                draft.blocks.append(_Block("block", line, source_text))
        index += 1
    return draft


def _section_level(blocks: list[_Block], title_level: int | None) -> int | None:
    """``##`` normally; else the shallowest level below the title that has headings."""
    levels = sorted(
        {b.level for b in blocks if b.kind == "heading" and not is_link_list_marker(b.text)}
    )
    below_title = [lv for lv in levels if title_level is None or lv > title_level]
    if 2 in below_title:
        return 2
    return below_title[0] if below_title else None


def parse_markdown(text: str, source: Path) -> Article:
    """Parse a Markdown draft into an :class:`Article`."""
    draft = _scan(text, source)
    blocks = draft.blocks
    title, title_line, title_level = draft.title, draft.title_line, None
    first_h1 = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
    if first_h1 is not None:
        title, title_line, title_level = first_h1.text, first_h1.line, 1
        blocks = [b for b in blocks if b is not first_h1]
    if not title:
        raise ArticleError("no title: start the draft with a '# Title' line", path=source, line=1)
    level = _section_level(blocks, title_level)
    if level is None:
        raise ArticleError(
            "no sections: give each reason a '## Heading' line", path=source, line=title_line
        )
    last_heading = max(
        (i for i, b in enumerate(blocks) if b.kind == "heading" and b.level == level), default=-1
    )
    footer = next(
        (i for i, b in enumerate(blocks) if b.kind == "hr" and i > last_heading), len(blocks)
    )
    intro: list[str] = []
    sections: list[Section] = []
    current: tuple[str, int, list[str]] | None = None
    skipping = False  # inside a "## Related Articles"-like section
    for block in blocks[:footer]:
        if block.kind == "heading" and block.level <= level:
            if current is not None:
                sections.append(Section(current[0], tuple(current[2]), current[1]))
                current = None
            skipping = is_link_list_marker(block.text) or is_boilerplate(block.text)
            if not skipping:
                current = (strip_numbering(block.text)[1], block.line, [])
            continue
        if skipping or block.kind == "hr":
            continue
        markdown = "#" * block.level + " " + block.text if block.kind == "heading" else block.text
        if is_boilerplate(plain_text(markdown)):
            continue
        (current[2] if current is not None else intro).append(markdown)
    if current is not None:
        sections.append(Section(current[0], tuple(current[2]), current[1]))
    return Article(
        title=title,
        intro=tuple(intro),
        sections=tuple(sections),
        source=source,
        format="markdown",
    )
