"""The sandbox templates and ``when`` expressions run in: sizes bounded, not only time.

``"x" * 10**9`` is one C call that allocates a gigabyte before any render budget
(:mod:`dripline._budget`, checked between bytecodes) can stop it, and Jinja would even
fold it while compiling. Jinja's sandbox hands the operators named in
``intercepted_binops`` to :meth:`BoundedSandbox.call_binop` (and stops folding them:
``jinja2.nodes.BinExpr.as_const``), which refuses a repetition or concatenation whose
result would be too long *before* Python builds it. Arithmetic on numbers is untouched.

Source: Jinja 3.1 "Sandbox", section "Operator Intercepting"
(https://jinja.palletsprojects.com/en/3.1.x/sandbox/#operator-intercepting).
"""

from __future__ import annotations

from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["MAX_CONCATENATION", "MAX_REPETITION", "BoundedSandbox"]

# Characters (or items) a `*` may produce: rules and padding ("-" * 40), never megabytes.
MAX_REPETITION = 10_000
# Characters (or items) a `+` may produce. Concatenation only adds lengths, but a loop
# over `{% set ns.s = ns.s + ns.s %}` doubles; a template is at most 1 MB itself.
MAX_CONCATENATION = 1_000_000

_SEQUENCES = (str, bytes, list, tuple)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """``ImmutableSandboxedEnvironment`` whose ``*`` and ``+`` cannot build huge values.

    Raises ``jinja2.exceptions.SecurityError`` (a ``TemplateError``) naming the operator
    and the size it would have produced: a ``check`` error at the file and line, a
    deferred delivery at send time (see :func:`dripline.conditions.step_applies`).
    """

    intercepted_binops = frozenset({"*", "+"})

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
        return super().call_binop(context, operator, left, right)


def _check_repetition(sequence: Any, count: Any) -> None:
    if isinstance(count, int) and len(sequence) * count > MAX_REPETITION:
        raise SecurityError(
            f"repeating a {type(sequence).__name__} of {len(sequence)} with * {count} "
            f"would make {len(sequence) * count:,} characters or items; the sandbox "
            f"allows {MAX_REPETITION:,}"
        )
