"""Durations written as ``90s``, ``15m``, ``2h``, ``1d`` or ``1h30m``: one syntax for
``requeue --older-than`` and ``[experiment] click_window``."""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import DriplineError

__all__ = ["LONGEST", "parse_duration"]

# ASCII digits only: "٣h" is not a duration anyone means to write in a config file.
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])", re.IGNORECASE)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# An age past this would put a cut-off before year 1 (OverflowError): nothing is that old.
LONGEST = timedelta(days=36500)


def parse_duration(text: str, name: str) -> timedelta:
    """``text`` as a :class:`~datetime.timedelta` (at most 100 years).

    ``name`` (a flag or setting, such as ``--older-than``) starts the message of the
    DriplineError raised for anything else.
    """
    compact = text.replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise DriplineError(f"{name}: not a duration like 30m, 2h or 1d: {text!r}")
    try:
        age = timedelta(seconds=sum(float(n) * _UNIT[u.lower()] for n, u in parts))
    except OverflowError:
        age = LONGEST + timedelta(days=1)
    if age > LONGEST:
        raise DriplineError(f"{name}: {text!r} is longer than 100 years")
    return age
