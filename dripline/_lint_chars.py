"""``check``'s invisible-character rule: every line of a step file, as written and as HTML.

A C1 control (U+0092: Windows-1252 text decoded wrongly), a stray U+FFFD, a
zero-width space or a bidi override is reported with the file and line it is on;
``&#8203;``-style references count too, since they reach the email the same way.
The subject line is left to the renderer, which refuses such characters in any
header (the error names the subject's line). The preheader's padding is added at
render time and never appears in a step file, so it is never reported.

Controls, U+FFFD and bidi overrides are errors (they corrupt or reorder what is
shown); zero-width characters are warnings (usually pasted, rarely harmful).
"""

from __future__ import annotations

import html

from ._invisible import INVISIBLE, describe
from .campaign import Step, line_of_key

__all__ = ["invisible_findings"]

Found = tuple[str, str, int | None]  # (severity, message, line)

_ZERO_WIDTH = frozenset("\u200b\u2060\ufeff\u180e")


def _value_lines(step: Step, lines: list[str]) -> dict[int, str]:
    """Lines holding the subject or preheader, by number, with what each key is."""
    found: dict[int, str] = {}
    for key in ("subject", "preheader"):
        line = line_of_key(step.path, key)
        if line is not None and line <= len(lines):
            found[line] = key
    return found


def invisible_findings(step: Step) -> list[Found]:
    """(severity, message, line): one per invisible character kind per line of the step file."""
    try:
        text = step.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    lines = text.split("\n")
    keys = _value_lines(step, lines)
    findings: list[Found] = []
    for number, raw in enumerate(lines, start=1):
        if keys.get(number) == "subject":
            continue
        seen: set[str] = set()
        for char in INVISIBLE.findall(raw) + INVISIBLE.findall(html.unescape(raw)):
            if char in seen:
                continue
            seen.add(char)
            where = keys.get(number, "body" if number >= step.body_line else "front matter")
            severity = "warning" if char in _ZERO_WIDTH else "error"
            findings.append((severity, f"{where} holds {describe(char)}", number))
    # A TOML escape ("\\u0092") only shows in the parsed value.
    preheader_line = next((n for n, k in keys.items() if k == "preheader"), None)
    for char in dict.fromkeys(INVISIBLE.findall(step.preheader)):
        message = f"preheader holds {describe(char)}"
        if not any(line == preheader_line and text == message for _, text, line in findings):
            severity = "warning" if char in _ZERO_WIDTH else "error"
            findings.append((severity, message, preheader_line))
    return findings
