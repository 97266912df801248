"""The sandbox templates and ``when`` expressions run in: sizes bounded, not only time.

``"x" * 10**9`` is one C call that allocates a gigabyte before any render budget
(:mod:`dripline._budget`, checked between bytecodes) can stop it, and Jinja would even
fold it while compiling. Jinja's sandbox hands the operators named in
``intercepted_binops`` to :meth:`BoundedSandbox.call_binop` (and stops folding them:
``jinja2.nodes.BinExpr.as_const``), which refuses a repetition or concatenation whose
result would be too long *before* Python builds it. Arithmetic on numbers is untouched.
The same goes for the other one-call ways to pad a text: a width given to
``str.center``/``ljust``/``rjust``/``zfill``/``expandtabs`` (:meth:`BoundedSandbox.call`),
to the ``center``, ``indent`` and ``format`` filters, or in a ``%`` or ``str.format``
format (``'%1000000000s' % x``, ``'{:>1000000000}'.format(x)``) is refused above
:data:`MAX_REPETITION`; a ``replace`` or ``join`` (method or filter) whose result would
pass :data:`MAX_CONCATENATION`, and a ``**`` on integers whose result would have more
than :data:`MAX_POWER_DIGITS` digits (``(((10**64)**64)**64)**64``), are refused too.

Source: Jinja 3.1 "Sandbox", section "Operator Intercepting"
(https://jinja.palletsprojects.com/en/3.1.x/sandbox/#operator-intercepting).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["MAX_CONCATENATION", "MAX_POWER_DIGITS", "MAX_REPETITION", "BoundedSandbox"]

# Characters (or items) a `*` may produce: rules and padding ("-" * 40), never megabytes.
MAX_REPETITION = 10_000
# Characters (or items) a `+` may produce. Concatenation only adds lengths, but a loop
# over `{% set ns.s = ns.s + ns.s %}` doubles; a template is at most 1 MB itself.
MAX_CONCATENATION = 1_000_000

# Decimal digits a `**` on integers may produce: Python's own limit for printing an int
# (sys.int_info.default_max_str_digits); past it the value could not even be shown.
MAX_POWER_DIGITS = 4_300

_SEQUENCES = (str, bytes, list, tuple)
# str methods whose first argument is the width of the text they return.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
# A printf conversion's width and precision (either may be ``*``: taken from the values).
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
# A str.format replacement field's spec (after ``:``), possibly with nested fields.
_FORMAT_SPEC = re.compile(r"\{[^{}:]*:((?:[^{}]|\{[^{}]*\})*)\}")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """``ImmutableSandboxedEnvironment`` whose ``*`` and ``+`` cannot build huge values.

    Raises ``jinja2.exceptions.SecurityError`` (a ``TemplateError``) naming the operator
    and the size it would have produced: a ``check`` error at the file and line, a
    deferred delivery at send time (see :func:`dripline.conditions.step_applies`).
    """

    intercepted_binops = frozenset({"*", "+", "%", "**"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Filters are called directly by compiled templates, not through call().
        self.filters = dict(self.filters)
        for name, check in (("center", _width_filter), ("indent", _width_filter)):
            self.filters[name] = check(self.filters[name])
        self.filters["format"] = _format_filter(self.filters["format"])
        self.filters["replace"] = _replace_filter(self.filters["replace"])
        self.filters["join"] = _join_filter(self.filters["join"])

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # The double underscores mirror Jinja's signature (keyword arguments pass through).
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            width = args[0] if args else kwargs.get("width", kwargs.get("tabsize"))
            if name in _WIDTH_METHODS:
                _check_width(width, f"str.{name}")
            elif name == "expandtabs" and isinstance(width, int):
                _check_width(width * owner.count("\t"), "str.expandtabs")
            elif name == "replace" and len(args) >= 2:
                _check_replace(owner, *args[:3])
            elif name == "join" and len(args) == 1 and not kwargs:
                items = list(args[0])  # once: a generator is consumed by measuring it
                _check_join(owner, items)
                args = (items,)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        text: str = value.__self__

        @wraps(wrapper)
        def bounded(*args: Any, **kwargs: Any) -> str:
            _check_format_spec(text, args, kwargs)
            return wrapper(*args, **kwargs)

        return bounded

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        # Numbers first and without a super() call: this runs for every `*` and `+`.
        if operator == "*":
            if isinstance(left, _SEQUENCES):
                _check_repetition(left, right)
            elif isinstance(right, _SEQUENCES):
                _check_repetition(right, left)
            return left * right
        if operator == "+":
            if (
                isinstance(left, _SEQUENCES)
                and isinstance(right, _SEQUENCES)
                and len(left) + len(right) > MAX_CONCATENATION
            ):
                raise SecurityError(
                    f"joining with + would make {len(left) + len(right):,} characters "
                    f"or items; the sandbox allows {MAX_CONCATENATION:,}"
                )
            return left + right
        if operator == "**":
            _check_power(left, right)
            return left**right
        if operator == "%":
            if isinstance(left, str):
                _check_printf(left, right)
            return left % right
        return super().call_binop(context, operator, left, right)


def _check_repetition(sequence: Any, count: Any) -> None:
    if isinstance(count, int) and len(sequence) * count > MAX_REPETITION:
        raise SecurityError(
            f"repeating a {type(sequence).__name__} of {len(sequence)} with * {count} "
            f"would make {len(sequence) * count:,} characters or items; the sandbox "
            f"allows {MAX_REPETITION:,}"
        )


def _check_width(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_REPETITION:
        raise SecurityError(
            f"{what} with a width of {width:,} characters; the sandbox allows {MAX_REPETITION:,}"
        )


def _check_printf(fmt: str, values: Any) -> None:
    """Refuse a ``%`` format whose width or precision (literal or ``*``) is too big."""
    starred = False
    for match in _PRINTF.finditer(fmt):
        for part in match.groups():
            if part == "*":
                starred = True
            elif part is not None:
                _check_width(int(part), "a % format")
    if starred:
        for value in values if isinstance(values, tuple) else (values,):
            _check_width(value, "a % format")


def _check_format_spec(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a ``str.format`` whose field widths or precisions are too big; a width
    taken from the values (a nested field) is checked on the values."""
    for match in _FORMAT_SPEC.finditer(fmt):
        spec = match.group(1)
        if "{" in spec:
            for value in (*args, *kwargs.values()):
                _check_width(value, "str.format")
        for number in re.findall(r"\d+", spec):
            _check_width(int(number), "str.format")


def _width_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(original)
    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        _check_width(width, f"the {original.__name__.removeprefix('do_')} filter")
        return original(value, width, *args, **kwargs)

    return bounded


def _format_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(original)
    def bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            _check_printf(value, args or tuple(kwargs.values()))
        return original(value, *args, **kwargs)

    return bounded


def _check_power(base: Any, exponent: Any) -> None:
    if type(base) is int and type(exponent) is int and exponent > 0 and abs(base) > 1:
        digits = exponent * math.log10(abs(base))
        if digits > MAX_POWER_DIGITS:
            raise SecurityError(
                f"raising to the power {exponent:,} would make a number of about "
                f"{digits:,.0f} digits; the sandbox allows {MAX_POWER_DIGITS:,}"
            )


def _check_replace(text: str, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(old, str) and isinstance(new, str)) or len(new) <= len(old):
        return
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    size = len(text) + found * (len(new) - len(old))
    if size > MAX_CONCATENATION:
        raise SecurityError(
            f"replace would make {size:,} characters; the sandbox allows {MAX_CONCATENATION:,}"
        )


def _check_join(separator: Any, items: list[Any]) -> None:
    size = sum(len(item) for item in items if isinstance(item, _SEQUENCES))
    size += len(separator) * max(len(items) - 1, 0) if isinstance(separator, str) else 0
    if size > MAX_CONCATENATION:
        raise SecurityError(
            f"join would make {size:,} characters or items; the sandbox allows "
            f"{MAX_CONCATENATION:,}"
        )


def _replace_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(original)
    def bounded(eval_ctx: Any, value: Any, old: Any, new: Any, count: Any = None) -> Any:
        if isinstance(value, str):
            _check_replace(value, old, new, -1 if count is None else count)
        return original(eval_ctx, value, old, new, count)

    return bounded


def _join_filter(original: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(original)
    def bounded(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
        items = list(value)  # once: a generator is consumed by measuring it
        if attribute is None:
            _check_join(d, items)
        return original(eval_ctx, items, d, attribute)

    return bounded
