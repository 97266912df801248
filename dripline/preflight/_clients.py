"""Client support: every feature a rendered email uses, looked up for each target client.

One warning per feature and source file, at the first line that uses it, naming
the clients that do not support it and those that support it only in part, with
caniemail's notes saying which part. A ``{# caniemail-ignore <feature ids>: why #}``
comment in the file a use comes from silences it there (the shipped layout lists
its own, each justified in docs/preflight.md).
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import lxml.html

from ..findings import Finding
from ._caniemail import client_name, known_features, support
from ._features import features_used
from ._locate import Locator

__all__ = ["client_findings", "plain_note"]


def plain_note(text: str) -> str:
    # caniemail's notes are Markdown: keep link texts, drop the URLs.
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).strip()


def _message(detail: str, feature: str, missing: list[str], partial: dict[str, list[str]]) -> str:
    title = known_features().get(feature, feature)
    parts = []
    if missing:
        parts.append("not supported in " + ", ".join(client_name(c) for c in missing))
    for notes, clients in partial.items():
        names = ", ".join(client_name(c) for c in clients)
        parts.append(f"only partly supported in {names} ({notes or 'no detail given'})")
    return f"{detail}: {title} ({feature}) is " + "; ".join(parts)


@cache
def _gaps(feature: str, clients: tuple[str, ...]) -> tuple[list[str], dict[str, list[str]]]:
    """(clients without ``feature``, {caniemail's notes: clients with part of it})."""
    missing: list[str] = []
    partial: dict[str, list[str]] = defaultdict(list)
    for client in clients:
        level = support(feature, client)
        if level.status == "n":
            missing.append(client)
        elif level.status == "a":
            partial[" ".join(plain_note(n) for n in level.notes)].append(client)
    return missing, dict(partial)


def client_findings(
    document: lxml.html.HtmlElement,
    locator: Locator,
    clients: tuple[str, ...],
    step: int,
) -> list[Finding]:
    """Warnings for the features of ``document`` that ``clients`` (caniemail ids) lack."""
    found: list[Finding] = []
    seen: set[tuple[str, Path]] = set()
    looked_up: set[tuple[str, str]] = set()
    for use in features_used(document):
        # Most uses repeat (every <td>, every px): each feature+detail is located once.
        if (use.feature, use.detail) in looked_up:
            continue
        looked_up.add((use.feature, use.detail))
        missing, partial = _gaps(use.feature, clients)
        if not missing and not partial:
            continue
        source, line = locator.find(use.patterns)
        if use.feature in source.ignored or (use.feature, source.path) in seen:
            continue
        seen.add((use.feature, source.path))
        lacking = tuple(c for c in clients if c in missing or any(c in p for p in partial.values()))
        message = _message(use.detail, use.feature, missing, partial)
        found.append(
            Finding(
                "warning", message, source.path, line, step, "client-support", lacking, use.feature
            )
        )
    return found
