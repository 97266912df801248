"""Attribute names: one rule for the CSV import, ``subscriber set`` and the API.

A header or key becomes a name by :func:`attribute_key` (``Plan Type`` -> ``plan_type``,
``Seats (max)`` -> ``seats_max``), and a name is stored only if templates and ``when``
can read it as ``subscriber.<name>`` (:func:`attribute_name_problem`): a Python
identifier (Jinja's rule for a name after a dot: ``2fa`` is not one), at most
:data:`MAX_ATTRIBUTE_NAME` characters, and not a name the subscriber mapping already
answers to (``subscriber.items`` is the dict's method, ``subscriber.__class__`` is
refused by the sandbox; Jinja looks an attribute up before a key), nor one of
:data:`STORED_FIELDS` (``subscriber show --json`` and the API answer with those for what
is not an attribute: a ``Status`` column stored as one would read as the real status).
"""

from __future__ import annotations

import re

__all__ = ["MAX_ATTRIBUTE_NAME", "STORED_FIELDS", "attribute_key", "attribute_name_problem"]

MAX_ATTRIBUTE_NAME = 64  # characters; a longer "name" is a pasted value or a sentence
# Runs of anything that is not a letter, a digit or _: spaces, hyphens, brackets, dots.
_SEPARATORS = re.compile(r"[^\w]+")
# The subscriber's stored fields that are no attribute, each with how it is changed
# instead. A CRM export's "Status = unsubscribed" stored as an attribute would leave
# the person active and mailed, while `subscriber show` printed "status: unsubscribed".
STORED_FIELDS = {
    "status": (
        "record unsubscribes with `dripline unsubscribe EMAIL` (one address) or "
        "`dripline suppress import FILE.csv` (a list)"
    ),
    "created_at": "it is when the subscriber was first stored",
    "campaigns": "use `dripline subscribe` or `dripline unsubscribe --campaign`",
    "attributes": "it names the set of attributes, not one",
    "public_key": "unsubscribe and click links already sent carry it",
}


def attribute_key(header: str) -> str:
    """The attribute name a CSV header (or ``subscriber set``'s ``key``) stores under.

    Lower-cased; each run of other characters than letters, digits and ``_`` becomes
    one ``_``, none at either end: ``Plan Type`` -> ``plan_type``, ``Sign-up Source``
    -> ``sign_up_source``, ``Seats (max)`` -> ``seats_max``, ``_id`` stays ``_id``.
    """
    return "_".join(_SEPARATORS.sub(" ", header.strip().lower()).split())


def attribute_name_problem(name: str) -> str | None:
    """Why ``name`` (as :func:`attribute_key` made it) cannot be an attribute, or None."""
    if not name:
        return "has no letters or digits to make an attribute name of"
    if len(name) > MAX_ATTRIBUTE_NAME:
        return f"makes a name of {len(name)} characters; attribute names have at most 64"
    if not name.isidentifier():
        start = "starts with a digit" if name[0].isdigit() else "is not a name"
        return f"{start}, so subscriber.{name} could not read it; rename it (e.g. plan_2fa)"
    if name in STORED_FIELDS:
        return (
            f"names the subscriber's stored field {name!r}, not an attribute "
            f"({STORED_FIELDS[name]})"
        )
    if hasattr(dict, name):
        return (
            f"subscriber.{name} is the subscriber mapping's own {name!r}, not an attribute; "
            "rename it"
        )
    return None
