"""A time budget for template code: a runaway loop in a step cannot hold the engine.

Jinja compiles a template to Python, so a step with two nested ``range(100000)``
loops runs for many minutes and no timeout on a socket helps. :class:`RenderBudget`
runs a call under a deadline; past it, one watchdog thread raises
:class:`BudgetExceeded` *inside* the rendering thread (CPython's
``PyThreadState_SetAsyncExc``, checked between bytecodes, so pure-Python template
code is interrupted at once). Arming and disarming cost two lock round trips, not a
thread per call. A pending interrupt that arrives after the call returned is
cancelled, so it never lands in unrelated code.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["DEFAULT_RENDER_BUDGET", "BudgetExceeded", "RenderBudget", "RenderCancelled"]

DEFAULT_RENDER_BUDGET = 5.0  # seconds per message render or step compile

T = TypeVar("T")
_LOOK = 0.1  # seconds between the watchdog's looks: the budget's (and a cancel's) precision


class BudgetExceeded(Exception):
    """Raised inside the rendering thread when its budget ran out."""


class RenderCancelled(BudgetExceeded):
    """The ``cancel`` event was set while rendering (SIGTERM): stop now, not at the budget."""


def _interrupt(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class RenderBudget:
    """Runs calls with at most ``seconds`` each (``None``: no limit). Thread-safe."""

    def __init__(self, seconds: float | None = DEFAULT_RENDER_BUDGET) -> None:
        self.seconds = seconds
        self._cond = threading.Condition()
        # thread id -> (monotonic deadline, cancel event)
        self._armed: dict[int, tuple[float, threading.Event | None]] = {}
        self._fired: dict[int, type[BudgetExceeded]] = {}
        self._watchdog: threading.Thread | None = None

    def run(self, call: Callable[[], T], cancel: threading.Event | None = None) -> T:
        """``call()``, or :class:`BudgetExceeded` once it has run ``seconds``
        (:class:`RenderCancelled` as soon as ``cancel`` is set; both checked every 0.1 s).

        The exception may arrive wrapped (a template engine re-raising it as its own
        error); :meth:`run` always raises the plain exception then.
        """
        if self.seconds is None and cancel is None:
            return call()
        me = threading.get_ident()
        with self._cond:
            limit = self.seconds if self.seconds is not None else float("inf")
            self._armed[me] = (time.monotonic() + limit, cancel)
            self._fired.pop(me, None)
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="dripline-render-budget", daemon=True
                )
                self._watchdog.start()
            # No notify: the watchdog looks every _LOOK seconds, so arming costs no wake-up
            # (it runs for every message).
        try:
            result = call()
        except BaseException as err:
            fired = self._disarm(me)
            if fired is not None:
                raise fired(f"stopped after {self.seconds:g} s") from err
            raise
        fired = self._disarm(me)
        if fired is not None:
            raise fired(f"stopped after {self.seconds:g} s")
        return result

    def _disarm(self, me: int) -> type[BudgetExceeded] | None:
        """Stop watching this thread; what fired, if anything (a late interrupt is cancelled)."""
        with self._cond:
            self._armed.pop(me, None)
            fired = self._fired.pop(me, None)
            if fired is not None:
                _interrupt(me, None)  # not yet delivered? then it never will be
        return fired

    def _watch(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for thread_id, (deadline, cancel) in list(self._armed.items()):
                    cancelled = cancel is not None and cancel.is_set()
                    if deadline <= now or cancelled:
                        del self._armed[thread_id]
                        kind = RenderCancelled if cancelled else BudgetExceeded
                        self._fired[thread_id] = kind
                        _interrupt(thread_id, kind)
                self._cond.wait(_LOOK)
