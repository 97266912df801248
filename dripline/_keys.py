"""Known keys of dripline's TOML files: a typo is an error with its line and the closest key.

Each file's readers declare the keys they read next to the code that reads them
(``campaign.toml`` and front matter in :mod:`dripline.campaign`, ``preview.toml``
in :mod:`dripline.samples`, ``dripline.toml`` in :mod:`dripline.settings`); this
module only compares what a file holds against such a declaration.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

__all__ = ["closest", "key_line", "suggestion", "unknown_keys"]


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` is most likely a misspelling of (difflib ratio >= 0.6), or None."""
    choices = sorted(known)
    lowered = {choice.lower(): choice for choice in choices}
    if name.lower() in lowered:  # "Reply_To": only the case differs
        return lowered[name.lower()]
    matches = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggestion(name: str, known: Iterable[str]) -> str:
    """ "did you mean 'reply_to'?", or the list of known names when none is close."""
    choices = sorted(known)
    match = closest(name, choices)
    if match is not None:
        return f"did you mean {match!r}?"
    return f"known: {', '.join(choices)}" if choices else "nothing is expected here"


def unknown_keys(data: Mapping[str, Any], known: Collection[str]) -> list[str]:
    """Keys of ``data`` not in ``known``, in file order (TOML tables keep it)."""
    return [key for key in data if key not in known]


def key_line(text: str, key: str, table: str | None = None, first_line: int = 1) -> int | None:
    """The line of ``key = ...`` (or ``[key]``) in TOML ``text``, inside ``[table]`` when given.

    ``text`` starts at line ``first_line`` of its file (front matter starts at 2).
    """
    start = 0
    if table:
        header = re.search(rf"^[ \t]*\[\s*{re.escape(table)}\s*\]", text, re.MULTILINE)
        if header is None:
            return None
        start = header.end()
    quoted = rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"
    # [ \t]*, not \s*: the match must start on the key's own line, not a blank one above.
    pattern = re.compile(rf"^[ \t]*(?:{quoted}\s*=|\[\[?\s*{quoted}\s*\]\]?)", re.MULTILINE)
    match = pattern.search(text, start)
    if match is None:
        return None
    if table:
        # Stop at the next table header: the key must belong to [table].
        following = re.compile(r"^[ \t]*\[", re.MULTILINE).search(text, start)
        if following is not None and following.start() < match.start():
            return None
    return text.count("\n", 0, match.start()) + first_line
