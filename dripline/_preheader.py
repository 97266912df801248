"""The preheader's padding: what keeps body text out of the inbox preview.

Inbox lists show the first characters of a message after the subject: about 140
on desktop clients, fewer on phones. The hidden preheader comes first, so a short
preheader ("Quick update") would be followed in the preview by the masthead and
"Hi Ana, ...". Each unit of padding is a figure space (U+2007, shown as blank)
then two zero-width characters (U+FEFF, U+034F) that stop clients collapsing the
blanks; :data:`PREVIEW_CHARS` characters of it fill any preview.

The padding is the same for every message of a step (not sized to the preheader)
so the fast path can render it once: a preheader holding a subscriber's name
would otherwise need a different amount per subscriber.

Hiding: the layout's ``.preheader`` rule uses ``display:none`` (Gmail, Apple Mail),
``mso-hide:all`` (Outlook for Windows), and ``max-height:0; max-width:0;
overflow:hidden; opacity:0; font-size:1px`` for clients that drop ``display``.
It sets no text colour: colour equal to the background is what SpamAssassin's
HTML_FONT_LOW_CONTRAST scores.
"""

from __future__ import annotations

__all__ = ["PADDING_UNIT", "PREHEADER_PADDING", "PREVIEW_CHARS"]

PREVIEW_CHARS = 150
PADDING_UNIT = "\u2007\ufeff\u034f"
PREHEADER_PADDING = PADDING_UNIT * (PREVIEW_CHARS // len(PADDING_UNIT))
