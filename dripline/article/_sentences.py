"""Sentences in article prose, split by pysbd rather than at every full stop.

"Dr.", "Mr.", "a.m.", "p.m.", "e.g.", "U.S.", decimals ("7.5 hours") and initials
("J. R. Tolkien") end no sentence: a preheader is the whole first sentence, and a
heading such as "3. Dim the Lights After 9 p.m." is still a heading.
"""

from __future__ import annotations

import re

import pysbd
from pysbd.lang.english import English

__all__ = ["ends_like_sentence", "ends_with_abbreviation", "sentences"]

_ABBREVIATIONS = frozenset(English.Abbreviation.ABBREVIATIONS) | frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "no", "approx", "fig"}
)
_DOTTED = re.compile(r"^(?:[A-Za-z]\.){2,}$")  # p.m., U.S., e.g., i.e.
_INITIAL = re.compile(r"^[A-Z]\.$")
_CLOSERS = "\"”’')]"
_SENTENCE_PUNCTUATION = tuple(".,;:!…")


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (pysbd's English rules), each stripped."""
    # A segmenter per call: pysbd keeps per-text state on the instance.
    segmenter = pysbd.Segmenter(language="en", clean=False)
    return [s.strip() for s in segmenter.segment(text) if s.strip()]


def ends_with_abbreviation(text: str) -> bool:
    """True when the final full stop belongs to an abbreviation or initial ("9 p.m.")."""
    words = text.rstrip(_CLOSERS).split()
    if not words or not words[-1].endswith("."):
        return False
    last = words[-1].lstrip("(\"“‘'")
    return bool(_DOTTED.match(last) or _INITIAL.match(last) or last[:-1].lower() in _ABBREVIATIONS)


def ends_like_sentence(text: str) -> bool:
    """Ends with closing punctuation (. , ; : ! …), not counting an abbreviation's full stop."""
    bare = text.rstrip().rstrip(_CLOSERS)
    return bare.endswith(_SENTENCE_PUNCTUATION) and not ends_with_abbreviation(bare)
