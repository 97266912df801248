"""A first name to greet someone by, from the full name they gave.

``nameparser`` (derek73/python-nameparser) reads "Last, First" order, titles
("Dr.", "Prof. Dr.", "Sir"), suffixes ("Jr.", "PhD"), particles ("van der",
"de la"), and CJK and Korean family-name-first names. What it returns is kept
only when it is a plausible first name: a title alone, an initial, digits, or an
address pasted into the name field give "" instead, so the template's
``default("there")`` greets them rather than "Hi Dr.," or "Hi J.,". A first name
given explicitly (CSV column, form field) is never replaced by this.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from nameparser import HumanName
from nameparser.config import CONSTANTS

__all__ = ["derive_first_name"]

# Emoji, symbols and format characters (ZWJ, variation selectors) are not part of
# anyone's name: "Chidi 🌍" greets "Chidi".
_DROPPED = frozenset({"So", "Sk", "Cf", "Cc", "Co", "Cn", "Cs"})
_FIRST_NAME_MAX = 100  # the subscribers.first_name column


def _without_symbols(text: str) -> str:
    if text.isascii() and text.isprintable():
        return " ".join(text.split())
    kept = (
        c
        for c in text
        if unicodedata.category(c) not in _DROPPED and not 0xFE00 <= ord(c) <= 0xFE0F
    )
    return " ".join("".join(kept).split())


def _plausible(word: str) -> bool:
    """A given name: letters (with ' - . inside), not an initial, no digits or @."""
    if not word or len(word) > _FIRST_NAME_MAX:
        return False
    if any(c.isdigit() or c in "@/\\_:;<>()[]{}" for c in word):
        return False
    letters = [c for c in word if c.isalpha()]
    if not letters:
        return False
    if len(letters) == 1:
        # One Latin letter is an initial; one Han character can be a whole given name.
        return unicodedata.name(letters[0], "").startswith("CJK")
    return all(c.isalpha() or c in "-'’. " or unicodedata.category(c) == "Mn" for c in word)


def _plain_first(text: str) -> str | None:
    """The first word of a plain name ("Ada Lovelace"), where nameparser is sure to say
    the same; None when the name needs the parser. Parsing costs ~0.2 ms a name, which
    a million-row import should not pay for "Firstname Lastname"."""
    if not text.isascii() or any(c in text for c in ",.()\"'&@/"):
        return None
    words = text.split()
    head = words[0]
    if len(head) < 2 or not head.isalpha() or head.isupper() or head.islower():
        return None  # initials, and names whose case the parser would change
    for word in words:
        low = word.lower()
        if (
            low in CONSTANTS.titles
            or low in CONSTANTS.conjunctions
            or low in CONSTANTS.prefixes
            or low in CONSTANTS.suffix_acronyms
            or low in CONSTANTS.suffix_not_acronyms
        ):
            return None
    return head


@lru_cache(maxsize=65536)
def derive_first_name(name: str) -> str:
    """The given name in ``name``, or "" when none can be told with confidence.

    "Okafor, Chidi" -> "Chidi"; "Dr. Lena Weber" -> "Lena"; "J. Robert Oppenheimer"
    -> "Robert"; "Mr. Smith" -> ""; "JANE DOE" -> "Jane".
    """
    text = _without_symbols(name)
    if not text or "@" in text:
        return ""
    plain = _plain_first(text)
    if plain is not None:
        return plain
    return _parsed_first(text)


def _parsed_first(text: str) -> str:
    """nameparser's reading of ``text``, kept only when plausible."""
    parsed = HumanName(text)
    parsed.capitalize()  # only changes names written all upper or all lower case
    first = parsed.first.strip()
    if not _plausible(first) and parsed.middle:
        # "J. Robert Oppenheimer": people who sign with an initial go by the next name.
        first = parsed.middle.split()[0]
    return first if _plausible(first) else ""
