"""Errors about an option's value name that option, as the user typed it (``--start: ...``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import DriplineError

__all__ = ["option_value"]


@contextmanager
def option_value(option: str) -> Iterator[None]:
    """Inside, a :class:`DriplineError` is re-raised prefixed with ``option`` ("--tz: ...")."""
    try:
        yield
    except DriplineError as err:
        if err.message.startswith(f"{option}:"):
            raise
        raise type(err)(f"{option}: {err.message}", path=err.path, line=err.line) from err
