"""People named in a heading ("Ask Dr. Lee About Sleep"): the words sentence case keeps.

A personal name is found where a courtesy or academic title abbreviation ("Dr.",
"Mr.", "Prof.") introduces it, and read with ``nameparser`` (derek73/python-nameparser):
its titles, given names, family name and suffixes ("Jr.", "III", "PhD", also after a
comma as in "Mr. Smith, Jr.") keep their capitals. In a Title Case heading every word
is capitalised, so the name ends at a suffix, at a word headings use around names
("About", "Says"), at punctuation that closes a phrase, or after three names.
"""

from __future__ import annotations

from nameparser import HumanName
from nameparser.config import CONSTANTS

__all__ = ["name_words"]

_MAX_NAMES = 3  # given, middle, family: "Dr. Martin Luther King Jr."
_EDGES = "\"“”‘’'([{¿¡"
# Words a heading puts next to a name; never part of one.
_AROUND_NAMES = frozenset(
    ("a", "about", "after", "an", "and", "answers", "are", "as", "asks", "at", "before", "but",
     "by", "can", "did", "does", "explains", "for", "from", "gets", "had", "has", "have", "how",
     "in", "into", "is", "knows", "makes", "on", "or", "recommends", "reveals", "said", "says",
     "shares", "should", "suggests", "talks", "tells", "the", "thinks", "to", "wants", "was",
     "were", "what", "when", "why", "will", "with", "would")
)  # fmt: skip


def _core(word: str) -> str:
    return word.strip(_EDGES).rstrip(",;:!?)]}”’\"'")


def _is_title(word: str) -> bool:
    """ "Dr.", "Mrs.", "Prof.": a title abbreviation nameparser knows, capitalised."""
    core = _core(word)
    return (
        core.endswith(".")
        and core[:1].isupper()
        and core[:-1].replace(".", "").lower() in CONSTANTS.titles
    )


def _is_suffix(word: str) -> bool:
    bare = _core(word).replace(".", "").lower()
    return bool(bare) and (
        bare in CONSTANTS.suffix_acronyms or bare in CONSTANTS.suffix_not_acronyms
    )


def _span(words: list[str], start: int) -> int:
    """The end (exclusive) of the name the title at ``start`` introduces."""
    end, names = start + 1, 0
    while end < len(words):
        word, core = words[end], _core(words[end])
        if _is_suffix(word) and names:
            return end + 1  # a suffix closes the name
        if not core[:1].isupper() or core.lower() in _AROUND_NAMES or names == _MAX_NAMES:
            break
        names += 1
        end += 1
        if word.rstrip(")]}”’\"'")[-1:] in ";:!?" or (
            word.endswith(",") and not (end < len(words) and _is_suffix(words[end]))
        ):
            break  # "Dr. Lee: ...", "Mr. Smith, and ..."
    return end


def name_words(words: list[str]) -> set[int]:
    """Indexes of ``words`` that belong to a personal name introduced by a title."""
    kept: set[int] = set()
    index = 0
    while index < len(words):
        if not _is_title(words[index]):
            index += 1
            continue
        end = _span(words, index)
        parsed = HumanName(" ".join(_core(w) for w in words[index:end]))
        if end > index + 1 and (parsed.first or parsed.last):
            kept.update(range(index, end))
        index = end
    return kept
