"""caniemail's support data, from the snapshot shipped in ``dripline/preflight/data``.

The snapshot (``caniemail.json``) holds, per feature, the latest tested support
value of every client, as caniemail writes it: ``y`` supported, ``a`` partial,
``n`` not supported, ``u`` unknown, each optionally followed by note numbers
(``a #1 #2``). Source, commit and date are in the file; the data is MIT-licensed
(``caniemail-LICENSE.txt`` beside it). ``python -m dripline.preflight.refresh``
rebuilds it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CLIENTS",
    "Support",
    "client_name",
    "known_clients",
    "known_features",
    "resolve_clients",
    "snapshot_info",
    "support",
]

SNAPSHOT = Path(__file__).resolve().parent / "data" / "caniemail.json"

# The target clients: Gmail web, Gmail iOS/Android, Outlook on Windows,
# Outlook.com, Apple Mail on iOS and macOS, Yahoo (web).
DEFAULT_CLIENTS = (
    "gmail.desktop-webmail",
    "gmail.ios",
    "gmail.android",
    "outlook.windows",
    "outlook.outlook-com",
    "apple-mail.ios",
    "apple-mail.macos",
    "yahoo.desktop-webmail",
)


@dataclass(frozen=True)
class Support:
    """How one client supports one feature: ``status`` is y, a, n or u; notes are caniemail's."""

    status: str
    notes: tuple[str, ...] = ()


@cache
def _data() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def snapshot_info() -> dict[str, str]:
    """Where the shipped data comes from: ``source``, ``commit``, ``date``, ``licence``."""
    data = _data()
    return {key: str(data[key]) for key in ("source", "commit", "date", "licence")}


@cache
def known_features() -> dict[str, str]:
    """Feature id (``css-display-flex``) -> caniemail's title (``display:flex``)."""
    return {slug: str(f["title"]) for slug, f in _data()["features"].items()}


def known_clients() -> list[str]:
    """Every client id the snapshot has data for (``family.platform``), sorted."""
    return list(_data()["clients"])


def client_name(client: str) -> str:
    """``outlook.windows`` -> ``Outlook Windows`` (caniemail's names; Outlook.com stays one)."""
    family, _, platform = client.partition(".")
    names = _data()["names"]
    if platform == "outlook-com":
        return "Outlook.com"
    return f"{names['family'].get(family, family)} {names['platform'].get(platform, platform)}"


def resolve_clients(wanted: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """(client ids, unknown names) for ``[lint] clients``; a family name means all its platforms."""
    known: list[str] = _data()["clients"]
    chosen: list[str] = []
    unknown: list[str] = []
    for name in wanted:
        matches = [c for c in known if c == name or c.partition(".")[0] == name]
        if not matches:
            unknown.append(name)
        chosen += [c for c in matches if c not in chosen]
    return tuple(chosen), unknown


@cache
def support(feature: str, client: str) -> Support:
    """caniemail's current support of ``feature`` in ``client``; ``u`` when it has no data."""
    entry = _data()["features"].get(feature)
    if entry is None:
        return Support("u")
    raw = str(entry["support"].get(client, "u"))
    notes = tuple(
        str(entry["notes"][number])
        for number in re.findall(r"#(\d+)", raw)
        if number in entry["notes"]
    )
    return Support(raw[:1] or "u", notes)
