"""Characters a reader cannot see that still change an email: what they are, where they sit.

Found in real campaigns: C1 controls from Windows-1252 text decoded as Latin-1
(U+0092 where a curly apostrophe was meant; one such character is known to make
Gmail clip a small message), U+FFFD left by a failed decode, zero-width spaces
pasted from web pages, and bidi overrides that reverse the text after them
(the "Trojan Source" characters, CVE-2021-42574). Headers refuse them, ``check``
reports them with file and line, and subscriber values lose them before they
reach a body.

Zero-width joiners (U+200C, U+200D) are not in the list: Persian, Hindi and emoji
sequences need them. U+034F, U+2007 and U+FEFF do appear on purpose in one place,
the preheader padding (:mod:`dripline._preheader`), which is never linted.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["INVISIBLE", "describe", "find_invisible"]

_NAMES = {
    "\ufffd": "U+FFFD REPLACEMENT CHARACTER (text that failed to decode)",
    "\u200b": "U+200B ZERO WIDTH SPACE",
    "\u2060": "U+2060 WORD JOINER",
    "\ufeff": "U+FEFF ZERO WIDTH NO-BREAK SPACE",
    "\u180e": "U+180E MONGOLIAN VOWEL SEPARATOR",
}
_BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# C0 controls except tab, line feed and carriage return; DEL; C1 controls.
INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + "".join(_NAMES) + _BIDI + "]")


def describe(char: str) -> str:
    """A human name for one character of :data:`INVISIBLE`, with why it is a problem."""
    code = ord(char)
    if char in _NAMES:
        return _NAMES[char]
    if char in _BIDI:
        name = unicodedata.name(char, "BIDI CONTROL")
        return f"U+{code:04X} {name} (a bidi control: it reorders the text after it)"
    if 0x80 <= code <= 0x9F:
        return f"U+{code:04X} (a C1 control character: Windows-1252 text decoded wrongly?)"
    return f"U+{code:04X} (a control character)"


def find_invisible(text: str) -> list[tuple[int, str]]:
    """(offset, description) of every invisible or control character in ``text``."""
    return [(match.start(), describe(match.group())) for match in INVISIBLE.finditer(text)]
