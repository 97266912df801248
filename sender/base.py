"""The sender interface: open, send one message, close.

A sender is chosen by URL (``smtp://``, ``maildir:``, ``memory:`` ...); see
:mod:`sender.registry`. Plugins subclass :class:`Sender` and implement
``_send`` (and ``_open`` / ``_close`` when they hold a connection); the base
class does the bookkeeping: opening on first use, refusing sends after close,
context-manager support.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self

from dripline.errors import ConfigError, DriplineError

__all__ = [
    "OutgoingMessage",
    "PermanentSendError",
    "SendError",
    "SendResult",
    "Sender",
    "SenderConfigError",
    "TransientSendError",
    "unexpected_failure",
]


@dataclass(frozen=True)
class OutgoingMessage:
    """A complete RFC 5322 message and its envelope."""

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes  # the whole message, CRLF line endings, ready for SMTP DATA
    message_id: str  # the Message-ID header's value, angle brackets included


@dataclass(frozen=True)
class SendResult:
    """What the receiving side said about one accepted message."""

    message_id: str
    reply: str  # e.g. "250 2.0.0 Ok: queued as 4Fq2x" or "saved to outbox/new/…"
    queue_id: str | None = None
    code: int | None = None
    enhanced_status: str | None = None  # RFC 3463, e.g. "2.0.0"


class SendError(DriplineError):
    """A message was not accepted. Subclasses say whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        enhanced_status: str | None = None,
        reply: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.enhanced_status = enhanced_status
        self.reply = reply or message


class TransientSendError(SendError):
    """Try again later (4xx, 421, timeouts, dropped connections).

    ``ambiguous`` is true when the connection died after the message data was
    sent and before the server answered: it may or may not have been delivered.
    """

    def __init__(self, message: str, *, ambiguous: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.ambiguous = ambiguous


class PermanentSendError(SendError):
    """This recipient will not take this message (5xx). ``bounce`` marks a dead mailbox."""

    def __init__(self, message: str, *, bounce: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.bounce = bounce


class SenderConfigError(ConfigError):
    """The sender is misconfigured (bad URL, TLS or login refused): never retried.

    Raised from :meth:`Sender.send_many`, ``results`` holds the outcomes of the
    batch so far (``None`` for messages not attempted), so that what was sent is
    still recorded.
    """

    results: list[SendResult | SendError | None] | None = None


OutcomeCallback = Callable[[int, "SendResult | SendError"], None]


def unexpected_failure(err: Exception) -> TransientSendError:
    """An exception no sender should raise: the message may have gone, so never re-send it."""
    return TransientSendError(f"sender failed unexpectedly: {err!r}", ambiguous=True)


class _Outcomes:
    """A batch's outcomes, reported to ``on_result`` as each becomes known."""

    def __init__(self, size: int, on_result: OutcomeCallback | None) -> None:
        self.results: list[SendResult | SendError | None] = [None] * size
        self.on_result = on_result
        self.lock = threading.Lock()

    def set(self, index: int, outcome: SendResult | SendError) -> None:
        with self.lock:
            self.results[index] = outcome
        if self.on_result is not None:
            self.on_result(index, outcome)

    def fill(self, outcome: SendError) -> list[SendResult | SendError | None]:
        """Give every message not yet tried the same outcome (the relay is unreachable)."""
        for index, current in enumerate(self.results):
            if current is None:
                self.set(index, outcome)
        return self.results


class Sender(ABC):
    """Sends messages one at a time over a resource opened once.

    Use as ``with create_sender(url) as s: s.send(msg)``. ``send`` returns a
    :class:`SendResult` for an accepted message and raises
    :class:`TransientSendError` or :class:`PermanentSendError` for one that was
    not; :class:`SenderConfigError` means no message can go out at all.
    """

    #: URL schemes this class serves, for messages that list what is installed.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: False for senders whose messages can reach no one (printed, kept in memory): links
    #: in them may point anywhere. A plugin that delivers mail keeps the default.
    reaches_recipients: ClassVar[bool] = True

    def __init__(self) -> None:
        self._opened = False
        self._closed = False
        self._open_lock = threading.Lock()  # several threads may send through one sender

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, *, secrets: Mapping[str, str] | None = None) -> Self:
        """Build a sender from its URL; ``secrets`` holds passwords from the environment."""

    @property
    def display_url(self) -> str:
        """The URL to show a person: never holds a password."""
        return type(self).__name__

    def open(self) -> None:
        """Acquire what sending needs (a connection, a folder). Safe to call twice."""
        if self._opened and not self._closed:
            return
        with self._open_lock:
            if self._closed:
                raise SenderConfigError(f"{self.display_url}: the sender was closed")
            if not self._opened:
                self._open()
                self._opened = True

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; opens the sender on first use."""
        if not message.recipients:
            raise PermanentSendError("the message has no recipient")
        self.open()
        return self._send(message)

    def send_many(
        self,
        messages: Sequence[OutgoingMessage],
        *,
        on_result: OutcomeCallback | None = None,
        stop: threading.Event | None = None,
    ) -> list[SendResult | SendError | None]:
        """Send a batch: one outcome per message, in the batch's order.

        ``on_result(index, outcome)`` is called as soon as each outcome is known, so a
        caller can record it before the next message goes (it may be called from
        worker threads). Once ``stop`` is set no further message is started; those
        not tried have ``None``. A :class:`SendError` for one message is that
        message's outcome and never stops the batch; an unexpected exception from a
        plugin becomes an *ambiguous* :class:`TransientSendError` (it may or may not
        have gone out, so it is not retried). A :class:`SenderConfigError` means
        nothing more can go out: it is raised, carrying ``results`` (``None`` where not
        attempted). When the sender cannot be opened for a transient reason (the relay
        is down), or a send fails with ``unreachable`` set (no connection could be
        had), the messages not yet tried get that :class:`TransientSendError`.
        This version sends one by one; senders that can send in parallel
        (``smtp://...?connections=N``) override it.
        """
        outcomes = _Outcomes(len(messages), on_result)
        if messages:
            try:
                self.open()
            except TransientSendError as err:  # nothing can go right now: all of them wait
                return outcomes.fill(err)
            except SenderConfigError as err:
                err.results = outcomes.results
                raise
        for index, message in enumerate(messages):
            if stop is not None and stop.is_set():
                break
            outcome: SendResult | SendError
            try:
                outcome = self.send(message)
            except SendError as err:
                outcome = err
            except SenderConfigError as err:
                err.results = outcomes.results
                raise
            except Exception as err:  # a plugin's bug must not lose the rest of the batch
                outcome = unexpected_failure(err)
            # Outside the try: a failure to record (the caller's) is not a send failure.
            outcomes.set(index, outcome)
            if getattr(outcome, "unreachable", False):
                # No connection could be had: the rest would each wait for the same
                # timeout; they get this outcome untried and are retried later.
                return outcomes.fill(outcome)  # type: ignore[arg-type]
        return outcomes.results

    def close(self) -> None:
        """Release what ``open`` acquired. Safe to call twice."""
        if self._opened and not self._closed:
            self._close()
        self._closed = True

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> None:  # noqa: B027 - optional hook, most senders hold nothing
        """Hook: acquire resources."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Hook: release resources."""

    @abstractmethod
    def _send(self, message: OutgoingMessage) -> SendResult:
        """Hook: deliver one message (the sender is open)."""
