"""A time budget for template code: a runaway loop in a step cannot hold the engine.

Jinja compiles a template to Python, so a step with two nested ``range(100000)``
loops runs for many minutes and no timeout on a socket helps. A :class:`Deadline`
guards a stretch of work in the calling thread; past it, the one watchdog thread of
the process raises :class:`BudgetExceeded` *inside* that thread (CPython's
``PyThreadState_SetAsyncExc``, checked between bytecodes, so pure-Python template
code is interrupted at once). Arming and disarming cost two lock round trips, not a
thread per call, and no tracing hook slows the guarded code. A pending interrupt
that arrives after the stretch ended is cancelled, so it never lands in unrelated
code. Guarded code that catches the interrupt (``except Exception``) is interrupted
again every 0.1 s until it leaves the stretch. Deadlines nest: each one raises only
for itself.

:class:`RenderBudget` (dispatch: seconds per call) and ``templating.TimeBudget``
(check and render: one budget over several stretches) are both built on it.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TypeVar

__all__ = [
    "DEFAULT_RENDER_BUDGET",
    "BudgetExceeded",
    "Deadline",
    "RenderBudget",
    "RenderCancelled",
]

DEFAULT_RENDER_BUDGET = 5.0  # seconds per message render or step compile

T = TypeVar("T")
_LOOK = 0.1  # seconds between the watchdog's looks: the budget's (and a cancel's) precision


class BudgetExceeded(Exception):
    """Raised inside the guarded thread when its deadline passed.

    Raised by a :class:`Deadline` leaving its block, :attr:`stack` holds the guarded
    thread's frames when it fired, innermost first (for saying where; drop it after).
    """

    stack: list[FrameType] = []  # noqa: RUF012 (instances get their own)


class RenderCancelled(BudgetExceeded):
    """The ``cancel`` event was set while rendering (SIGTERM): stop now, not at the budget."""


def _interrupt(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class _Watchdog:
    """One daemon thread per process that fires every armed :class:`Deadline` when due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: set[Deadline] = set()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            self._armed.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._watch, name="dripline-render-budget", daemon=True
                )
                self._thread.start()
            # No notify: the watchdog looks every _LOOK seconds, so arming costs no wake-up
            # (it runs for every message).

    def disarm(self, deadline: Deadline) -> None:
        with self._cond:
            self._armed.discard(deadline)
            if deadline.fired is not None:
                _interrupt(deadline.thread_id, None)  # not yet delivered? then it never will be

    def _watch(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for deadline in list(self._armed):
                    if deadline.fired is not None:
                        # Fired, yet still inside the block: the guarded code caught the
                        # interrupt (Jinja folds a constant expression while compiling
                        # under `except Exception`, then tries it again). Again, until
                        # the block is left (disarm).
                        _interrupt(deadline.thread_id, deadline.fired)
                        continue
                    cancelled = deadline.cancel is not None and deadline.cancel.is_set()
                    if deadline.at <= now or cancelled:
                        deadline.fired = RenderCancelled if cancelled else BudgetExceeded
                        # Where it was, for the error message (the traceback may be
                        # rewritten): every frame now, as the frames lose their callers
                        # once they return (a generator's at once).
                        deadline.stack = _stack(sys._current_frames().get(deadline.thread_id))
                        _interrupt(deadline.thread_id, deadline.fired)
                self._cond.wait(_LOOK)


def _stack(frame: FrameType | None) -> list[FrameType]:
    """``frame`` and its callers, innermost first."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


_WATCHDOG = _Watchdog()


class Deadline:
    """``with Deadline(at):`` the block raises :class:`BudgetExceeded` once
    ``time.monotonic()`` passes ``at`` (:class:`RenderCancelled` as soon as ``cancel``
    is set; both checked every 0.1 s). ``at=None`` never fires by time.

    The interrupt may surface wrapped (a template engine re-raising it as its own error,
    or code catching ``Exception``); whenever this deadline fired, leaving the block
    raises the plain exception (``message`` as its text), chained to what was raised.
    :attr:`fired` tells whether it did, and :attr:`stack` where the thread was then.
    Not re-entrant; one thread per instance.
    """

    def __init__(
        self, at: float | None, cancel: threading.Event | None = None, message: str = ""
    ) -> None:
        self.at = float("inf") if at is None else at
        self.cancel = cancel
        self.message = message
        self.thread_id = threading.get_ident()
        self.fired: type[BudgetExceeded] | None = None
        # The guarded thread's frames when it fired, innermost first.
        self.stack: list[FrameType] = []

    def __enter__(self) -> Deadline:
        self.thread_id = threading.get_ident()
        self.fired, self.stack = None, []
        _WATCHDOG.arm(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while True:
            try:
                _WATCHDOG.disarm(self)
                break
            except BudgetExceeded:
                # A repeated interrupt (this deadline's, or an enclosing one's, which
                # repeats too) landed before disarming: disarm for sure, then go on.
                continue
        if self.fired is not None:
            text = "cancelled" if self.fired is RenderCancelled else self.message
            error = self.fired(text)
            error.stack = self.stack
            raise error from exc


class RenderBudget:
    """Runs calls with at most ``seconds`` each (``None``: no limit). Thread-safe."""

    def __init__(self, seconds: float | None = DEFAULT_RENDER_BUDGET) -> None:
        self.seconds = seconds

    def run(self, call: Callable[[], T], cancel: threading.Event | None = None) -> T:
        """``call()``, or :class:`BudgetExceeded` once it has run ``seconds``
        (:class:`RenderCancelled` as soon as ``cancel`` is set; both checked every 0.1 s).

        The exception may arrive wrapped (a template engine re-raising it as its own
        error); :meth:`run` always raises the plain exception then.
        """
        if self.seconds is None and cancel is None:
            return call()
        at = None if self.seconds is None else time.monotonic() + self.seconds
        with Deadline(at, cancel, f"stopped after {self.seconds:g} s" if self.seconds else ""):
            return call()
