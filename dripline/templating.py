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
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from jinja2 import BaseLoader, FileSystemLoader, StrictUndefined, TemplateSyntaxError, meta
from jinja2.loaders import split_template_path
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ._budget import BudgetExceeded, Deadline
from ._sandbox import BoundedSandbox
from .errors import CampaignError, RenderError

__all__ = [
    "PER_SUBSCRIBER_NAMES",
    "SLOT_PATTERN",
    "Environments",
    "RenderBudgetExceeded",
    "SlotTable",
    "TimeBudget",
    "failing_template_line",
    "make_environments",
    "rewrite_slots",
    "runaway_position",
    "template_cycle",
    "time_budget",
]

# Names whose values differ between recipients of the same step.
# tracked_links and open_pixel_url: per delivery (click and open tracking).
PER_SUBSCRIBER_NAMES = frozenset(
    {"subscriber", "unsubscribe_url", "recipient", "tracked_links", "open_pixel_url"}
)
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
    # Bounded: `*` and `+` cannot build megabytes in one C call no time budget interrupts.
    return BoundedSandbox(
        loader=loader,
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# Layouts and partials are small; a bigger "template" is a mistake (a log, a video).
MAX_TEMPLATE_BYTES = 1024 * 1024


class _RegularFileLoader(FileSystemLoader):
    """``FileSystemLoader`` that refuses, by name, what is not a regular file of sane size.

    Jinja's loader skips a folder or a FIFO named ``base.html`` as "not found", and would
    read a symlink to ``/dev/zero`` until memory runs out; both are a
    :class:`~dripline.errors.CampaignError` naming the file instead.
    """

    def get_source(
        self, environment: Any, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        for folder in self.searchpath:
            path = Path(folder, *split_template_path(template))
            try:
                info = path.stat()  # follows symlinks: what would be read
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                raise CampaignError("not a regular file (a device, folder or pipe?)", path=path)
            if info.st_size > MAX_TEMPLATE_BYTES:
                raise CampaignError(
                    f"the template is {info.st_size / 1024 / 1024:.1f} MB; templates are "
                    f"limited to {MAX_TEMPLATE_BYTES / 1024 / 1024:g} MB",
                    path=path,
                )
        return super().get_source(environment, template)


def make_environments(templates_dir: Path | None) -> Environments:
    """Sandboxed environments over ``templates/`` (subscriber data is never template code)."""
    loader = _RegularFileLoader(str(templates_dir)) if templates_dir else None
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


# -- guards against templates that never finish ----------------------------------------


def template_cycle(env: ImmutableSandboxedEnvironment, names: list[str]) -> list[str] | None:
    """The first ``{% extends %}``/``{% include %}``/``{% import %}`` cycle reachable from
    ``names`` (template names under the loader), as ``[a, b, a]``; None when there is none.

    Jinja would recurse until Python's stack runs out. Names computed at render time
    cannot be followed and are skipped; templates that fail to load or parse are left
    for the normal error path.
    """
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        done.add(name)
        try:
            source = env.loader.get_source(env, name)[0] if env.loader else ""
            referenced = list(meta.find_referenced_templates(env.parse(source)))
        except Exception:  # missing or broken: reported where it is used
            return None
        for child in referenced:
            if isinstance(child, str):
                cycle = visit(child, [*path, name])
                if cycle:
                    return cycle
        return None

    for start in names:
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


class RenderBudgetExceeded(RenderError):
    """Rendering took longer than its time budget (a runaway loop in a template?).

    ``template`` and ``template_line`` say which template (None: one made from a string,
    such as a step's body) was running or being compiled, and on which of its lines, when
    time ran out; ``part`` and ``part_source``, when a step was being compiled, which of
    its parts ("subject", "preheader", "body") and that part's template text.
    """

    template: str | None = None
    template_line: int | None = None
    part: str | None = None
    part_source: str | None = None


def _jinja_position(stack: list[FrameType]) -> tuple[str | None, int | None]:
    """The innermost Jinja template on the stack and its line, from its compiled code."""
    for frame in stack:
        template = frame.f_globals.get("__jinja_template__")
        if template is not None:
            return template.name, template.get_corresponding_lineno(frame.f_lineno)
    return None, None


def failing_template_line(err: BaseException) -> tuple[str, int] | None:
    """(template file name, line) where ``err`` was raised inside a template, or None.

    Jinja rewrites the traceback of an error raised while a template renders so that
    each template frame carries the template's file name (``"<template>"`` for one made
    from a string) and its own line number, in a frame whose globals hold
    ``__jinja_exception__`` (jinja2.debug.rewrite_traceback_stack); the innermost such
    frame is where the template failed.
    """
    found: tuple[str, int] | None = None
    tb = err.__traceback__
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


# Functions that load or compile a template file, with its name in a local.
_LOADING = frozenset({"compile", "get_source", "load", "_load_template"})


def _compile_position(
    stack: list[FrameType],
) -> tuple[str | None, int | None, str | None, str | None]:
    """(template file, line, step part, part's source) of a compile that ran out of time.

    Jinja works out constant expressions while it compiles (its optimizer), so a
    template can run away before any of it renders. Walking out from the innermost
    frame: the first optimizer ``node`` gives the line, the first loader or
    ``Environment.compile`` the template file (None for one made from a string), and
    dripline's own ``_compile(env, source, what)`` the part of a step being compiled.
    """
    template = line = part = source = None
    expression: re.Match[str] | None = None  # rewrite_slots parses one at a time
    for frame in stack:
        found, code = frame.f_locals, frame.f_code
        node_line = getattr(found.get("node"), "lineno", None)
        if line is None and isinstance(node_line, int):
            line = node_line
        if code.co_name == "replace" and isinstance(found.get("match"), re.Match):
            expression = found["match"]
        text = found.get("source")
        if code.co_name == "rewrite_slots" and expression is not None and isinstance(text, str):
            line = text.count("\n", 0, expression.start()) + 1  # the file's line, not 1
        # Jinja's loaders and compile, and our SlotLoader: the template file's name.
        name = found.get("template", found.get("name"))
        if template is None and code.co_name in _LOADING and isinstance(name, str):
            template = name
        if part is None and code.co_name == "_compile" and isinstance(text, str):
            part, source = str(found.get("what")), text
    return template, line, part, source


class TimeBudget:
    """A wall-clock budget (seconds; None: unlimited) shared by several stretches of work.

    The clock starts at construction; :meth:`watch` guards one stretch (Jinja rendering)
    and leaves out what runs no template code between stretches (CSS inlining).
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    @contextmanager
    def watch(self, what: str = "rendering") -> Iterator[None]:
        """Raise :class:`RenderBudgetExceeded` from the block once the deadline passes.

        Works in any thread: the process's render watchdog (:class:`dripline._budget.Deadline`)
        interrupts the calling thread, so guarded code runs at full speed, with no hook.
        The error names the template and line that was running, when one was.
        """
        if self.deadline is None:
            yield
            return
        guard = Deadline(self.deadline)
        try:
            with guard:
                yield
        except BudgetExceeded as err:
            if guard.fired is None:  # an enclosing deadline's: not ours to translate
                raise
            error = RenderBudgetExceeded(
                f"{what} took longer than {self.seconds:g} s (the render budget, "
                "DRIPLINE_RENDER_BUDGET): a loop that never ends, or one far too large?"
            )
            where = runaway_position(guard.stack)
            error.template, error.template_line, error.part, error.part_source = where
            guard.stack = err.stack = []  # frames hold every local of the render
            raise error from err


def runaway_position(
    stack: list[FrameType],
) -> tuple[str | None, int | None, str | None, str | None]:
    """Where template code that ran out of time was, from the frames when the budget
    fired (innermost first): (template file or None for one made from a string, its
    line, the step's part being compiled, that part's template text); see
    :class:`RenderBudgetExceeded`. A file being compiled wins over the template that
    was rendering (which included it)."""
    template, line, part, source = _compile_position(stack)
    if template is None:  # no template file was compiling: where did it run?
        running = _jinja_position(stack)
        template, line = running if running != (None, None) else (None, line)
    return template, line, part, source


def time_budget(seconds: float | None, what: str = "rendering") -> AbstractContextManager[None]:
    """``with time_budget(5.0):`` one stretch of work under a fresh :class:`TimeBudget`."""
    return TimeBudget(seconds).watch(what)
