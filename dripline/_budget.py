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

__all__ = ["DEFAULT_RENDER_BUDGET", "BudgetExceeded", "RenderBudget"]

DEFAULT_RENDER_BUDGET = 5.0  # seconds per message render or step compile

T = TypeVar("T")


class BudgetExceeded(Exception):
    """Raised inside the rendering thread when its budget ran out."""


def _interrupt(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class RenderBudget:
    """Runs calls with at most ``seconds`` each (``None``: no limit). Thread-safe."""

    def __init__(self, seconds: float | None = DEFAULT_RENDER_BUDGET) -> None:
        self.seconds = seconds
        self._cond = threading.Condition()
        self._armed: dict[int, float] = {}  # thread id -> monotonic deadline
        self._fired: set[int] = set()
        self._watchdog: threading.Thread | None = None

    def run(self, call: Callable[[], T]) -> T:
        """``call()``, or :class:`BudgetExceeded` once it has run ``seconds``.

        The exception may arrive wrapped (a template engine re-raising it as its own
        error); :meth:`run` always raises a plain :class:`BudgetExceeded` then.
        """
        if self.seconds is None:
            return call()
        me = threading.get_ident()
        with self._cond:
            self._armed[me] = time.monotonic() + self.seconds
            self._fired.discard(me)
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="dripline-render-budget", daemon=True
                )
                self._watchdog.start()
            self._cond.notify()
        try:
            result = call()
        except BaseException as err:
            if self._disarm(me):
                raise BudgetExceeded(f"took longer than {self.seconds:g} s") from err
            raise
        if self._disarm(me):
            raise BudgetExceeded(f"took longer than {self.seconds:g} s")
        return result

    def _disarm(self, me: int) -> bool:
        """Stop watching this thread; True if the budget ran out (a late interrupt is cancelled)."""
        with self._cond:
            self._armed.pop(me, None)
            fired = me in self._fired
            if fired:
                self._fired.discard(me)
                _interrupt(me, None)  # not yet delivered? then it never will be
        return fired

    def _watch(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for thread_id, deadline in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[thread_id]
                        self._fired.add(thread_id)
                        _interrupt(thread_id, BudgetExceeded)
                upcoming = min(self._armed.values(), default=None)
                self._cond.wait(None if upcoming is None else max(0.0, upcoming - now))
