"""Conditional steps: a step's front-matter ``when`` expression, checked and evaluated.

``when = "subscriber.plan == 'pro'"`` is a Jinja expression evaluated in the same
sandboxed environment as templates (:func:`dripline.templating.make_environments`,
StrictUndefined), against the subscriber's attributes as they are when the step is
due. Only ``subscriber`` may be named: anything else is a typo caught by ``check``.
A subscriber without the attribute makes the expression fail (StrictUndefined), not
quietly false; ``subscriber.plan | default('') == 'pro'`` says what to do instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError, meta, nodes

from ._budget import BudgetExceeded
from .errors import CampaignError
from .templating import make_environments

__all__ = [
    "WHEN_NAMES",
    "as_stored",
    "attribute_text",
    "check_when",
    "step_applies",
    "when_names",
]

# The names a ``when`` expression may use.
WHEN_NAMES = frozenset({"subscriber"})

_ENV = make_environments(None).text
MAX_EXPONENT = 64  # the largest literal power a `when` may raise to (see _huge_power)


@lru_cache(maxsize=512)
def _compiled(source: str) -> Callable[..., Any]:
    return _ENV.compile_expression(source, undefined_to_none=False)


def when_names(source: str) -> set[str]:
    """The variable names ``source`` uses. Raises ``jinja2.TemplateSyntaxError``."""
    return set(meta.find_undeclared_variables(_ENV.parse("{{ (" + source + ") }}")))


def _huge_power(source: str) -> bool:
    """Whether ``source`` raises to a power other than a small literal (``10**(10**7)``).

    Jinja folds constant arithmetic while compiling, in one C call that no render budget
    can interrupt: it would hold ``check`` and every worker loading the campaign.
    """
    tree = _ENV.parse("{{ (" + source + ") }}")
    return any(
        not (isinstance(power.right, nodes.Const) and type(power.right.value) is int)
        or abs(power.right.value) > MAX_EXPONENT
        for power in tree.find_all(nodes.Pow)
    )


def check_when(source: str) -> str | None:
    """Why ``source`` cannot be a ``when`` expression (syntax, unknown name), or None."""
    try:
        # Before anything that generates code: finding the names folds constants too.
        if _huge_power(source):
            return f"when may only raise to a literal power up to {MAX_EXPONENT} (such as x ** 2)"
        names = when_names(source)
        _compiled(source)
    except TemplateSyntaxError as err:
        return f"when is not a valid expression: {err.message}"
    except Exception as err:  # folding constants can fail too (int too long to print...)
        return f"when is not a valid expression: {type(err).__name__}: {err}"
    unknown = sorted(names - WHEN_NAMES)
    if unknown:
        return (
            f"when uses unknown name(s) {', '.join(map(repr, unknown))}: only subscriber "
            "(e.g. subscriber.plan == 'pro') is available"
        )
    return None


def attribute_text(value: Any) -> str:
    """``value`` as an attribute is stored: text (CSV import and ``subscriber set`` store
    text only), white space trimmed; TOML's ``true``/``false`` as ``"true"``/``"false"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return (value if isinstance(value, str) else str(value)).strip()


def as_stored(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A sample subscriber's ``fields`` as the dispatcher passes a stored subscriber's.

    Every attribute is text, and the standard fields are always there: ``name`` and
    ``first_name`` (``""`` when not on file), ``timezone`` (``None`` when not set), so a
    ``when`` that ``check`` passes for the samples behaves the same at send time.
    """
    attributes = {
        key: attribute_text(value)
        for key, value in fields.items()
        if key not in ("name", "first_name", "timezone", "email", "label")
    }
    return {
        **attributes,
        "name": attribute_text(fields.get("name") or ""),
        "first_name": attribute_text(fields.get("first_name") or ""),
        "timezone": attribute_text(fields["timezone"]) if fields.get("timezone") else None,
    }


def step_applies(step: Any, email: str, fields: Mapping[str, Any]) -> bool:
    """Whether ``step`` (a :class:`~dripline.campaign.Step`) goes to this subscriber.

    ``fields`` are the subscriber's values (attributes, name, first_name, timezone) as
    stored; ``email`` is added as ``subscriber.email``. True without a ``when``.

    Raises:
        CampaignError: the expression fails for these values (a missing attribute, a
            comparison the sandbox refuses), naming the step file and the ``when`` line;
            the dispatcher defers the delivery as for a broken campaign file.
    """
    source = getattr(step, "when", "")
    if not source:
        return True
    try:
        value = _compiled(source)(subscriber={**fields, "email": email})
        return bool(value)
    except BudgetExceeded:
        raise  # the render budget (or SIGTERM) stopped it: the caller reports that
    except Exception as err:  # TemplateError, TypeError, and KeyError ('{x}'.format()),
        # LookupError (.encode('rot13')): all the subscriber's values, never a lost delivery
        from .campaign import line_of_key  # the campaign module imports this one

        detail = str(err) if isinstance(err, TemplateError) else f"{type(err).__name__}: {err}"
        raise CampaignError(
            f"when {source!r} cannot be evaluated for this subscriber: {detail}",
            path=step.path,
            line=line_of_key(step.path, "when"),
        ) from err
