"""What an imported article is: a title, an introduction and the sections that become emails."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DriplineError

__all__ = ["Article", "ArticleError", "Section", "announced_count"]


class ArticleError(DriplineError):
    """An article cannot be imported (unreadable, no title, no sections, wrong count)."""


@dataclass(frozen=True)
class Section:
    """One reason of the article: its heading and its body as Markdown blocks."""

    heading: str  # as written in the article, numbering ("3.", "Reason 3:") removed
    blocks: tuple[str, ...]  # Markdown paragraphs and lists, in order
    line: int | None = None  # where the heading starts in the source file

    @property
    def body(self) -> str:
        return "\n\n".join(self.blocks)


@dataclass(frozen=True)
class Article:
    """A parsed article, whatever format it came in."""

    title: str
    intro: tuple[str, ...]  # Markdown blocks before the first section
    sections: tuple[Section, ...]
    source: Path
    format: str  # "text", "markdown" or "html"

    @property
    def announced_count(self) -> int | None:
        return announced_count(self.title)


_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20,
}  # fmt: skip
# Nouns that list-style titles count ("7 Ways ...", "Top 6 Reasons ...", "Five Signs ...").
_COUNTED_NOUNS = (
    "reasons|ways|tips|things|signs|benefits|steps|questions|mistakes|ideas|facts|myths|"
    "strategies|habits|rules|lessons|secrets|tricks|causes|symptoms|foods|exercises|tools|"
    "methods|examples|advantages|keys|factors|truths|practices"
)
_COUNT = re.compile(
    rf"\b(?:top\s+)?(\d{{1,2}}|{'|'.join(_NUMBER_WORDS)})\s+(?:[\w’'-]+\s+){{0,2}}?"
    rf"(?:{_COUNTED_NOUNS})\b",
    re.IGNORECASE,
)
_TOP_N = re.compile(rf"\btop\s+(\d{{1,2}}|{'|'.join(_NUMBER_WORDS)})\b", re.IGNORECASE)


def announced_count(title: str) -> int | None:
    """The number of items a list-style title promises, or None when it promises none."""
    match = _COUNT.search(title) or _TOP_N.search(title)
    if match is None:
        return None
    word = match.group(1).lower()
    count = int(word) if word.isdigit() else _NUMBER_WORDS[word]
    return count if count > 0 else None
