"""Which added step is a removed one under a new name, so its identity survives a rename.

Renaming a step file (``02-treatment-resistant.md`` -> ``02-high-efficacy.md``) or giving
a step an explicit ``id`` later changes its identity. Taken literally that is a removal
plus an addition, and the addition would reach the people who already got the step. A
plan pairs them instead, on evidence a reviewer can check in its output:

1. the same file (only the front-matter ``id`` changed);
2. the same content (subject and plain text, the footer's "(N of M)" aside);
3. the same position and the same subject or the same plain text (renamed and edited).

With no revision recorded (a database from before revisions) the removed step's content
is unknown, so only rule 3's position is left: one removed and one added step at the
same position are paired. Each pairing is printed by ``dripline plan``, and ``apply``
moves the deliveries (sent ones included) to the new identity.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["pair_renames", "unnumbered"]


# The layout's footer says where a step is, "(3 of 6)": an insert renumbers every later
# step, and that alone is not new content.
_NUMBERING = re.compile(r"\(\d+ of \d+\)")


def unnumbered(text: str) -> str:
    """``text`` with each "(N of M)" made alike, for comparing two renderings of a step."""
    return _NUMBERING.sub("(N of M)", text)


def _reason(old: dict[str, Any], new: dict[str, Any]) -> tuple[int, str]:
    """How strongly ``new`` is ``old`` renamed (0: not at all), and why, as plan text."""
    if "text" not in old:  # synthesized from the deliveries: only the position is known
        return (1, "same position") if old["position"] == new["position"] else (0, "")
    if old.get("file") == new.get("file"):
        return 4, "same file"
    same_subject = old["subject"] == new["subject"]
    same_text = unnumbered(old["text"]) == unnumbered(new["text"])
    if same_subject and same_text:
        return 3, "same content"
    if old["position"] == new["position"] and (same_subject or same_text):
        return 2, "same position and " + ("subject" if same_subject else "text")
    return 0, ""


def pair_renames(
    old_steps: list[dict[str, Any]],
    new_steps: list[dict[str, Any]],
    added: list[str],
    gone: list[str],
) -> dict[str, tuple[str, str]]:
    """``{new id: (old id, reason)}`` for each added step that is a gone one renamed.

    ``old_steps``/``new_steps`` are the steps of two states (see :mod:`._state`);
    ``added`` and ``gone`` the identities only one side has. Pairs are one to one, the
    strongest evidence first, then the nearest position.
    """
    old_by_id = {s["id"]: s for s in old_steps}
    new_by_id = {s["id"]: s for s in new_steps}
    candidates = []
    for new_id in added:
        for old_id in gone:
            old = old_by_id.get(old_id)
            if old is None:
                continue
            strength, why = _reason(old, new_by_id[new_id])
            if strength:
                distance = abs(old["position"] - new_by_id[new_id]["position"])
                candidates.append((-strength, distance, new_id, old_id, why))
    pairs: dict[str, tuple[str, str]] = {}
    taken: set[str] = set()
    for _, _, new_id, old_id, why in sorted(candidates):
        if new_id in pairs or old_id in taken:
            continue
        pairs[new_id] = (old_id, why)
        taken.add(old_id)
    return pairs
