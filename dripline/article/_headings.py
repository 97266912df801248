"""Heading shapes shared by the parsers: numbering, Title Case, questions, glued headings."""

from __future__ import annotations

import re

from ._sentences import ends_like_sentence, sentences

__all__ = [
    "HeadingShape",
    "is_title_case",
    "looks_like_heading",
    "split_glued_heading",
    "strip_numbering",
]

# "1. Foo", "3) Foo"
_NUMBERED = re.compile(r"^(\d{1,2})[.)]\s+(\S.*)$")
# "Reason 3: Foo", "Tip #2 - Foo", "No. 4: Foo", "#5: Foo"
_LABELLED = re.compile(
    r"^(?:(?:reason|step|tip|way|sign|benefit|myth|mistake|number|no\.)\s*#?\s*|#\s*)"
    r"(\d{1,2})\s*(?:[:.)–—-]\s*|\s+)(\S.*)$",
    re.IGNORECASE,
)
# Words Title Case leaves in lower case.
_MINOR_WORDS = frozenset(
    ("a", "an", "the", "and", "but", "or", "nor", "for", "so", "yet", "as", "at", "by", "in",
     "of", "off", "on", "per", "to", "up", "via", "vs", "from", "into", "onto", "over", "than",
     "with", "your", "its", "their", "our", "his", "her", "my", "is", "are", "be")
)  # fmt: skip
_MAX_HEADING_WORDS = 16
_MAX_HEADING_CHARS = 140


def strip_numbering(line: str) -> tuple[int | None, str]:
    """("3", "Foo") for "3. Foo" / "3) Foo" / "Reason 3: Foo"; (None, line) otherwise."""
    match = _NUMBERED.match(line) or _LABELLED.match(line)
    if match is None:
        return None, line
    return int(match.group(1)), match.group(2).strip()


def looks_like_heading(line: str) -> bool:
    """A short line that does not end like a sentence (a question mark is fine).

    A full stop that belongs to an abbreviation ("After 9 p.m.") does not end a sentence.
    """
    words = line.split()
    return (
        0 < len(words) <= _MAX_HEADING_WORDS
        and len(line) <= _MAX_HEADING_CHARS
        and not ends_like_sentence(line)
        and (line[0].isupper() or line[0].isdigit() or line[0] in "\"“‘'¿")
    )


def is_title_case(text: str) -> bool:
    """ "Enhances Effectiveness of Other Therapies" yes; "Enhances effectiveness of..." no."""
    words = [w for w in re.split(r"[\s/]+", text) if any(c.isalpha() for c in w)]
    if not words or not words[0].lstrip("\"“‘'(").lstrip()[:1].isupper():
        return False
    major = [w for w in words[1:] if w.lower() not in _MINOR_WORDS]
    if not major:
        return True
    capitalised = sum(w.lstrip("\"“‘'(")[:1].isupper() or w[:1].isdigit() for w in major)
    return capitalised / len(major) >= 0.75


class HeadingShape:
    """How an article's certain headings look, to judge the uncertain (glued) ones by."""

    def __init__(self, headings: list[str]):
        self.count = len(headings)
        self.title_case = (
            sum(is_title_case(h) for h in headings) * 2 > len(headings) if headings else True
        )
        lengths = [len(h.split()) for h in headings] or [2, 8]
        # One-word glued "headings" ("You|Tube is...") are brand names unless the article's
        # headings are single words too.
        self.min_words = 1 if min(lengths) == 1 else max(2, min(lengths) - 2)
        self.max_words = min(_MAX_HEADING_WORDS, max(lengths) + 3)

    def fits(self, heading: str) -> bool:
        words = len(heading.split())
        if not self.min_words <= words <= self.max_words:
            return False
        return is_title_case(heading) if self.title_case else heading[:1].isupper()


# A lower-case letter, digit, ')' or '?' directly followed by a capitalised word: the place
# where a heading was glued to the first sentence of its section when the page was copied.
_GLUE = re.compile(r"(?<=[a-z0-9)?])(?=[A-Z][a-z’']*[\s,])")


def split_glued_heading(line: str, shape: HeadingShape) -> tuple[str, str] | None:
    """("Enhances Effectiveness of Other Therapies", "Ketamine therapy not only...") or None.

    Only a line that reads as a paragraph is split, and only where the part before the glue
    point is shaped like the article's other headings and the part after reads as sentences.
    """
    if looks_like_heading(line) or len(line.split()) < 8:
        return None
    for match in _GLUE.finditer(line, 0, _MAX_HEADING_CHARS):
        heading, rest = line[: match.start()].strip(), line[match.start() :].strip()
        glued_word = heading.split()[-1] if heading.split() else ""
        if len([c for c in glued_word if c.isalpha()]) < 3 and not heading.endswith("?"):
            continue  # "mRNA", "McDonald": a word with a capital inside, not a glue point
        if any(mark in heading for mark in ("! ", "; ", ", ")) or len(sentences(heading)) > 1:
            continue  # the "heading" holds a sentence break ("Dr. Smith" is none): it is prose
        if not shape.fits(heading) or not looks_like_heading(heading):
            continue
        if len(rest.split()) < 6 or not rest.rstrip("\"”’')").endswith((".", "!", "?", "…")):
            continue
        return heading, rest
    return None
