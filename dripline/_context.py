"""Template context: what every recipient of a step shares, and subscriber values made safe.

Subscriber values reach bodies only as text, never as template code. They are
normalised first: control characters dropped, white space collapsed to single
spaces, empty values removed (so ``default("there")`` applies). Normalising
here, before either render path sees a value, is what lets the fast path place
a value byte-for-byte where the full path would put it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from ._invisible import INVISIBLE
from ._preheader import PREHEADER_PADDING
from .campaign import Campaign, Step
from .mime import check_header_injection

__all__ = ["clean_fields", "clean_text", "display_name", "step_context"]

_DROPPED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})


def clean_text(value: str) -> str:
    """Drop control, surrogate, private and unassigned characters; collapse white space.

    Invisible characters (:mod:`dripline._invisible`: zero-width spaces, bidi
    overrides, U+FFFD) go too: a bidi override in a name would reverse the text
    after it in the email.
    """
    if not value.isascii() or not value.isprintable():
        value = "".join(
            char
            for char in value
            if char.isspace() or unicodedata.category(char) not in _DROPPED_CATEGORIES
        )
        value = INVISIBLE.sub("", value)
    return " ".join(value.split())


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def clean_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Subscriber fields ready for a body: cleaned text, and no empty values."""
    cleaned = {}
    for key, value in fields.items():
        value = _clean(value)
        if value is None or value == "":
            continue
        cleaned[key] = value
    return cleaned


def step_context(campaign: Campaign, step: Step) -> dict[str, Any]:
    """Template variables that are the same for every recipient of ``step``."""
    return {
        "campaign": {
            "slug": campaign.slug,
            "name": campaign.name,
            "lang": campaign.lang,
            "from_name": campaign.from_name,
            "from_address": campaign.from_address,
            "reply_to": campaign.reply_to,
            "postal_address": campaign.postal_address,
            "disclaimer": campaign.disclaimer,
            "steps": len(campaign.steps),
        },
        "step": {
            "number": step.number,
            "total": len(campaign.steps),
            "day": step.day,
            "name": step.name,
        },
        # Without a preheader the preview should show the body's first words (what
        # `check` warns about), not 150 blank characters.
        "preheader_padding": PREHEADER_PADDING if step.preheader.strip() else "",
    }


def display_name(recipient: Any) -> str:
    """The To display name: refused if it could write headers, cleaned like body values.

    Line breaks and C0 controls raise :class:`HeaderInjectionError` (data trying to
    write headers); invisible characters are dropped. A name holding ``=?`` is
    RFC 2047-encoded by :mod:`dripline.mime`, so it reads back as written.
    """
    name = str(recipient.fields.get("name") or "")
    return clean_text(check_header_injection("To", name))
