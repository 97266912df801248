"""The plain-text part as ``format=flowed`` (RFC 3676): wrapped for old readers, reflowed by new.

Each logical line (a paragraph, a list item, a table row, or a line after a hard
break) is cut at spaces into lines of at most 76 characters; every line but the
last of a paragraph ends in a space, which tells a flowed reader to join it back.
A hard break is a line that does not end in a space. Quoted lines start with one
``>`` per level. A line that would start with a space, ``>`` or ``From `` is
space-stuffed (RFC 3676 4.4). A word longer than the width (a URL) is not cut.

Wrapping is a function of one logical line only, so the fast path wraps its
static lines once per step and only the lines holding subscriber values per
message, and both paths write the same text.
"""

from __future__ import annotations

import re

__all__ = ["WIDTH", "flow_line", "flow_text", "unflow"]

WIDTH = 76
_QUOTE = re.compile(r"(>+) ?")


_SPECIAL = (" ", ">", "From ")


def _stuff(line: str) -> str:
    return " " + line if line.startswith(_SPECIAL) else line


def flow_line(line: str) -> str:
    """One logical line (no ``\\n``) as flowed lines joined by ``\\n``."""
    line = line.rstrip(" ")
    quote = ""
    content = line
    if line.startswith(">"):
        match = _QUOTE.match(line)
        assert match is not None
        quote = match.group(1) + " "
        content = line[match.end() :]
        if not content:
            return match.group(1)
    room = WIDTH - len(quote) - 1  # the trailing space of a soft break
    if len(quote) + len(content) <= WIDTH or "  " in content:
        # Short, or laid out with runs of spaces (preformatted): kept as it is.
        return quote + content if quote else _stuff(content)
    out: list[str] = []
    current = ""
    for word in content.split(" "):
        if current and len(current) + 1 + len(word) > room:
            out.append(current + " ")
            current = word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\n".join(quote + part if quote else _stuff(part) for part in out)


def flow_text(text: str) -> str:
    """``text`` with every line flowed; line ends are ``\\n``."""
    return "\n".join(flow_line(line) for line in text.split("\n"))


def unflow(text: str) -> str:
    """The logical lines of flowed ``text`` (RFC 3676 4.2, DelSp=No): what a reader shows."""
    out: list[str] = []
    pending: tuple[int, str] | None = None  # (quote depth, text so far) of an open paragraph
    for raw in text.replace("\r\n", "\n").split("\n"):
        match = _QUOTE.match(raw) if raw.startswith(">") else None
        depth = len(match.group(1)) if match else 0
        body = raw[match.end() :] if match else raw.removeprefix(" ")
        if pending is not None and pending[0] == depth:
            body = pending[1] + body
        elif pending is not None:
            out.append(_quoted(*pending))
        pending = None
        if body.endswith(" "):
            pending = (depth, body)
        else:
            out.append(_quoted(depth, body))
    if pending is not None:
        out.append(_quoted(*pending))
    return "\n".join(out)


def _quoted(depth: int, body: str) -> str:
    return ">" * depth + (" " + body if body else "") if depth else body
