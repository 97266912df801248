"""Plain text as copied from a web page: one paragraph per line, headings as short lines.

The page's structure is gone, so headings are recognised by shape: numbered lines
("1.", "3)", "Reason 3:") when the article numbers its reasons, else short lines
without closing punctuation (questions included) that stand before a paragraph.
A heading glued to its first sentence ("...Other TherapiesKetamine therapy...")
is split off when its shape matches the other headings and the count in the title
still lacks a section.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from ._boilerplate import is_boilerplate, is_link_list_marker
from ._headings import HeadingShape, looks_like_heading, split_glued_heading, strip_numbering
from ._model import Article, ArticleError, Section, announced_count
from ._sentences import ends_like_sentence

__all__ = ["parse_text"]

_BULLET = re.compile(r"^[-*•·–—▪●◦]\s+(\S.*)$")
_ORDERED_ITEM = re.compile(r"^\d{1,3}[.)]\s+\S")
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\u200b-\u200d\ufeff]")
_WRAP_WIDTH = 100  # a line this short followed by more text in the same block is hard-wrapped


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based line in the file
    text: str
    block: int  # lines with no blank line between them share a block
    heading: str | None = None  # set when this line is a section heading
    glued_rest: str | None = None  # the sentence a glued heading ran into


def _read_lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    block = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        # Control characters and zero-width spaces come along with copied text; a heading
        # holding one would become a subject line no mail server accepts.
        visible = _INVISIBLE.sub("", raw.replace("\u00a0", " "))
        clean = " ".join(visible.split())
        if not clean:
            block += 1
            continue
        lines.append(_Line(number, clean, block))
    return lines


def _is_short(line: _Line) -> bool:
    """Headline-like: what lists of links to other articles are made of."""
    text = _BULLET.sub(r"\1", line.text)
    return len(text.split()) <= 16 and not ends_like_sentence(text.rstrip("?"))


def _drop_boilerplate(lines: list[_Line]) -> list[_Line]:
    kept = [
        line for line in lines if not is_boilerplate(line.text) or is_link_list_marker(line.text)
    ]
    out: list[_Line] = []
    index = 0
    while index < len(kept):
        line = kept[index]
        index += 1
        if not is_link_list_marker(line.text):
            out.append(line)
            continue
        # "Related Articles" and its link titles: drop short lines that are not followed by a
        # paragraph (the last short line before a paragraph is the article's next heading).
        while (
            index < len(kept)
            and _is_short(kept[index])
            and not is_link_list_marker(kept[index].text)
        ):
            following = kept[index + 1] if index + 1 < len(kept) else None
            if following is not None and not _is_short(following):
                break
            index += 1
    return out


def _is_list_item(text: str) -> bool:
    return bool(_BULLET.match(text) or _ORDERED_ITEM.match(text))


def _numbered_headings(body: list[_Line]) -> dict[int, str]:
    """Lines numbered 1, 2, 3... in order, when the article numbers its sections."""
    found: dict[int, str] = {}
    expected = 1
    default_shape = HeadingShape([])
    for index, line in enumerate(body):
        number, rest = strip_numbering(line.text)
        if number != expected:
            continue
        # A long numbered line is a heading only when one is glued to its first sentence;
        # otherwise it is an item of a numbered list.
        if looks_like_heading(rest) or split_glued_heading(rest, default_shape) is not None:
            found[index] = rest
            expected += 1
    return found if len(found) >= 2 else {}


def _plain_headings(body: list[_Line]) -> dict[int, str]:
    """Short lines without closing punctuation standing before a paragraph or list."""
    found: dict[int, str] = {}
    for index, line in enumerate(body):
        if _is_list_item(line.text) or not looks_like_heading(line.text):
            continue
        following = body[index + 1] if index + 1 < len(body) else None
        if following is None or looks_like_heading(following.text):
            continue
        found[index] = line.text
    return found


def _trim_to_count(found: dict[int, str], count: int | None) -> dict[int, str]:
    """More headings than the title announces: drop the ones shaped unlike the majority."""
    if count is None or len(found) <= count:
        return found
    questions = [i for i, h in found.items() if h.endswith("?")]
    odd = questions if len(questions) * 2 < len(found) else [i for i in found if i not in questions]
    for index in odd:
        if len(found) <= count:
            break
        del found[index]
    return found


def _glue_split(body: list[_Line], found: dict[int, str], count: int | None) -> list[_Line]:
    shape = HeadingShape(list(found.values()))
    out: list[_Line] = []
    glued = 0
    for index, line in enumerate(body):
        text = found.get(index)
        if text is not None:
            # A numbered heading may itself be glued: "6. Enhances ... TherapiesKetamine ..."
            split = split_glued_heading(text, shape) if not looks_like_heading(text) else None
            if split is not None:
                out.append(replace(line, heading=split[0], glued_rest=split[1]))
            else:
                out.append(replace(line, heading=text))
            continue
        room = count is None or len(found) + glued < count
        split = split_glued_heading(line.text, shape) if room and index > 0 else None
        if split is not None and not _is_list_item(line.text):
            glued += 1
            out.append(replace(line, heading=split[0], glued_rest=split[1]))
        else:
            out.append(line)
    return out


def _escape_block_start(text: str) -> str:
    """Keep prose prose in Markdown: a line starting with '#' or '>' is not a heading/quote."""
    return "\\" + text if text[:1] in "#>" else text


def _blocks(lines: list[_Line]) -> list[str]:
    """Group lines into Markdown blocks: paragraphs (joining hard-wrapped lines) and lists."""
    blocks: list[str] = []
    previous: _Line | None = None
    for line in lines:
        bullet = _BULLET.match(line.text)
        item = f"- {bullet.group(1)}" if bullet else None
        if item is None and _ORDERED_ITEM.match(line.text):
            item = line.text
        same_block = previous is not None and previous.block == line.block
        if item is not None:
            if same_block and blocks and _is_list_item(previous.text if previous else ""):
                blocks[-1] += "\n" + item
            else:
                blocks.append(item)
        elif same_block and blocks and previous is not None and len(previous.text) <= _WRAP_WIDTH:
            if not _is_list_item(previous.text):
                blocks[-1] += " " + line.text
            else:
                blocks.append(_escape_block_start(line.text))
        else:
            blocks.append(_escape_block_start(line.text))
        previous = line
    return blocks


def parse_text(text: str, source: Path) -> Article:
    """Parse plain text copied from a web page into an :class:`Article`."""
    lines = _drop_boilerplate(_read_lines(text))
    if not lines:
        raise ArticleError(
            "the article is empty (or holds nothing but page furniture)", path=source
        )
    title_line, body = lines[0], lines[1:]
    if not looks_like_heading(title_line.text) and not title_line.text.endswith("?"):
        raise ArticleError(
            "the first line should be the article's title (a short line), not a paragraph",
            path=source,
            line=title_line.number,
        )
    count = announced_count(title_line.text)
    found = _numbered_headings(body) or _trim_to_count(_plain_headings(body), count)
    marked = _glue_split(body, found, count)

    intro: list[_Line] = []
    sections: list[tuple[_Line, list[_Line]]] = []
    for line in marked:
        if line.heading is not None:
            rest = [replace(line, text=line.glued_rest, heading=None)] if line.glued_rest else []
            sections.append((line, rest))
        elif sections:
            sections[-1][1].append(line)
        else:
            intro.append(line)
    return Article(
        title=title_line.text,
        intro=tuple(_blocks(intro)),
        sections=tuple(
            Section(heading=head.heading or "", blocks=tuple(_blocks(rest)), line=head.number)
            for head, rest in sections
        ),
        source=source,
        format="text",
    )
