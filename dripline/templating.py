"""Jinja2 environments for emails, and the slot rewrite behind the per-step fast path.

Two sandboxed environments share one loader: ``html`` (autoescape on) for the
layout and body, ``text`` (autoescape off) for subjects and the plain-text part.
Both use StrictUndefined, so a misspelt variable is an error, not a blank.

The fast path renders a step once with every per-subscriber expression
(``{{ subscriber.first_name | default("there") }}``, ``{{ unsubscribe_url }}``)
replaced by an inert marker such as ``dlslot3x``; after CSS inlining and text
conversion the markers are replaced per subscriber by the expressions' values.
Templates whose control flow depends on subscriber data cannot be split that way:
:func:`rewrite_slots` reports them as dynamic and they take the full path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import BaseLoader, FileSystemLoader, StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "PER_SUBSCRIBER_NAMES",
    "SLOT_PATTERN",
    "Environments",
    "SlotTable",
    "make_environments",
    "rewrite_slots",
]

# Names whose values differ between recipients of the same step.
PER_SUBSCRIBER_NAMES = frozenset({"subscriber", "unsubscribe_url", "recipient"})
# Names that are the same for every recipient of a step.
PER_STEP_NAMES = frozenset({"campaign", "step", "body", "body_text", "preheader", "now"})

_EVALUABLE_NAMES = PER_SUBSCRIBER_NAMES | PER_STEP_NAMES

SLOT_PATTERN = re.compile(r"dlslot(\d+)x")
_EXPRESSION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.DOTALL)


@dataclass
class SlotTable:
    """Per-subscriber expressions found while rewriting, numbered in order of discovery."""

    expressions: list[str] = field(default_factory=list)
    dynamic_reasons: list[str] = field(default_factory=list)

    def marker(self, expression: str) -> str:
        expression = expression.strip()
        if expression not in self.expressions:
            self.expressions.append(expression)
        return f"dlslot{self.expressions.index(expression)}x"

    @property
    def dynamic(self) -> bool:
        return bool(self.dynamic_reasons)


@dataclass(frozen=True)
class Environments:
    html: ImmutableSandboxedEnvironment
    text: ImmutableSandboxedEnvironment


def _environment(loader: BaseLoader | None, autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        loader=loader,
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def make_environments(templates_dir: Path | None) -> Environments:
    """Sandboxed environments over ``templates/`` (subscriber data is never template code)."""
    loader = FileSystemLoader(str(templates_dir)) if templates_dir else None
    return Environments(html=_environment(loader, True), text=_environment(loader, False))


def _names_in(env: ImmutableSandboxedEnvironment, expression: str) -> set[str] | None:
    try:
        return set(meta.find_undeclared_variables(env.parse("{{ " + expression + " }}")))
    except TemplateSyntaxError:
        return None


def rewrite_slots(
    source: str, env: ImmutableSandboxedEnvironment, slots: SlotTable, name: str
) -> str:
    """Replace per-subscriber ``{{ expressions }}`` in ``source`` with slot markers.

    An expression qualifies when every name it uses is per-subscriber or per-step
    (so it can be evaluated on its own, outside the template). Anything else that
    still mentions subscriber data afterwards (a ``{% if %}``, a ``{% set %}``, a
    loop) makes the step dynamic.
    """

    def replace(match: re.Match[str]) -> str:
        expression = match.group(2)
        names = _names_in(env, expression)
        if names and names & PER_SUBSCRIBER_NAMES and names <= _EVALUABLE_NAMES:
            marker = slots.marker(expression)
            # A string literal keeps the tag's whitespace control ({{- -}}) meaning the same.
            return "{{" + match.group(1) + f" '{marker}' " + match.group(3) + "}}"
        return match.group(0)

    rewritten = _EXPRESSION.sub(replace, source)
    leftover = set(meta.find_undeclared_variables(env.parse(rewritten))) & PER_SUBSCRIBER_NAMES
    if leftover:
        slots.dynamic_reasons.append(
            f"{name} uses {', '.join(sorted(leftover))} outside a plain {{{{ }}}} expression"
        )
    return rewritten


class SlotLoader(BaseLoader):
    """Wraps a loader so every template it loads is slot-rewritten into one table."""

    def __init__(self, inner: BaseLoader, rewrite: Callable[[str, str], str]) -> None:
        self.inner = inner
        self.rewrite = rewrite

    def get_source(self, environment: Any, template: str) -> tuple[str, str | None, Any]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        return self.rewrite(source, template), filename, uptodate
