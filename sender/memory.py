"""``memory:NAME``: keeps messages in a process-wide outbox, for tests and previews."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import ClassVar, Self

from .base import OutgoingMessage, Sender, SendResult

__all__ = ["MemorySender"]


class MemorySender(Sender):
    """Appends every message to ``MemorySender.outbox(NAME)``; nothing leaves the process."""

    schemes = ("memory",)
    reaches_recipients = False  # kept in this process
    _outboxes: ClassVar[dict[str, list[OutgoingMessage]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "default") -> None:
        super().__init__()
        self.name = name

    @classmethod
    def from_url(cls, url: str, *, secrets: Mapping[str, str] | None = None) -> Self:
        _, _, name = url.partition(":")
        return cls(name.strip("/") or "default")

    @classmethod
    def outbox(cls, name: str = "default") -> list[OutgoingMessage]:
        """The messages sent so far through ``memory:NAME`` (a live list)."""
        with cls._lock:
            return cls._outboxes.setdefault(name, [])

    @classmethod
    def clear(cls, name: str | None = None) -> None:
        with cls._lock:
            if name is None:
                cls._outboxes.clear()
            else:
                cls._outboxes.pop(name, None)

    @property
    def display_url(self) -> str:
        return f"memory:{self.name}"

    def _send(self, message: OutgoingMessage) -> SendResult:
        box = self.outbox(self.name)
        with self._lock:
            box.append(message)
            position = len(box)
        return SendResult(
            message_id=message.message_id,
            reply=f"250 kept in memory:{self.name} as #{position}",
            queue_id=str(position),
            code=250,
        )
