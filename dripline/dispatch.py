"""One dispatch pass: claim due deliveries, build each message, send it, record the outcome.

Rendering is not this module's business: the caller passes a ``build`` function
(the per-step compiled renderer) that turns a :class:`ClaimedDelivery` into an
:class:`OutgoingMessage`. ``scheduler.py`` runs :func:`dispatch_pass` from its
single APScheduler interval job.

Every outcome is its own transaction, recorded right after the send, so a crash
loses at most the one message in flight (left in ``sending``, reported by
``dripline status``, never re-sent). Anything claimed but not attempted (stop
requested, sender unusable, an unexpected error) is released back to
``scheduled`` before returning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sender.base import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SenderConfigError,
    TransientSendError,
)

from .errors import DriplineError
from .store import ClaimedDelivery, DeliveryQueue

__all__ = ["MessageBuilder", "PassReport", "RetryPolicy", "dispatch_pass"]

MessageBuilder = Callable[[ClaimedDelivery, datetime], OutgoingMessage]


@dataclass(frozen=True)
class RetryPolicy:
    """Temporary failures are retried with exponential back-off, then given up."""

    max_attempts: int = 5
    first_delay: timedelta = timedelta(minutes=5)
    max_delay: timedelta = timedelta(hours=6)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


@dataclass
class PassReport:
    """What one pass did; ``errors`` holds one line per delivery that did not go out."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    ambiguous: int = 0
    bounced: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)


def _note(report: PassReport, item: ClaimedDelivery, outcome: str, error: object) -> None:
    report.errors.append(f"{item.campaign} step {item.step} to {item.email}: {outcome}: {error}")


def _send_one(
    queue: DeliveryQueue,
    sender: Sender,
    item: ClaimedDelivery,
    message: OutgoingMessage,
    now: datetime,
    retry: RetryPolicy,
    report: PassReport,
) -> None:
    """Send one built message and record what happened (its own transaction)."""
    try:
        result = sender.send(message)
    except TransientSendError as err:
        if err.ambiguous:
            # The server may have it: retrying could deliver it twice, so stop here.
            queue.mark_ambiguous(item.delivery_id, str(err))
            report.ambiguous += 1
            _note(report, item, "ambiguous", err)
        elif item.attempt >= retry.max_attempts:
            given_up = f"gave up after {item.attempt} attempts: {err}"
            queue.mark_failed(item.delivery_id, given_up)
            report.failed += 1
            _note(report, item, "failed", given_up)
        else:
            queue.mark_deferred(item.delivery_id, now + retry.delay(item.attempt), str(err))
            report.deferred += 1
        return
    except PermanentSendError as err:
        if err.bounce:
            queue.mark_bounced(item.delivery_id, str(err))
            report.bounced += 1
            _note(report, item, "bounced", err)
        else:
            queue.mark_failed(item.delivery_id, str(err))
            report.failed += 1
            _note(report, item, "failed", err)
        return
    queue.mark_sent(item.delivery_id, message_id=result.message_id, sent_at=now, reply=result.reply)
    report.sent += 1


def dispatch_pass(
    queue: DeliveryQueue,
    build: MessageBuilder,
    sender: Sender,
    now: datetime,
    *,
    batch_size: int = 100,
    retry: RetryPolicy | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PassReport:
    """Send everything due at ``now``, batch by batch, until nothing is due or a stop.

    ``now`` is the pass's clock: what is due, the messages' send time and the
    retry times all use it (``dripline run --now``). ``should_stop`` is checked
    between messages (SIGTERM): the message in flight is finished and recorded,
    the rest of the batch is released. :class:`SenderConfigError` (no message can
    go out) releases the batch and propagates.
    """
    retry = retry or RetryPolicy()
    report = PassReport()
    while not should_stop():
        batch = queue.claim_due(now, batch_size)
        if not batch:
            break
        report.claimed += len(batch)
        done = 0
        unusable: SenderConfigError | None = None
        try:
            for item in batch:
                if should_stop():
                    break
                try:
                    message = build(item, now)
                except DriplineError as err:  # a template error: this email cannot be built
                    queue.mark_failed(item.delivery_id, f"render: {err}")
                    report.failed += 1
                    _note(report, item, "failed", err)
                    done += 1
                    continue
                try:
                    _send_one(queue, sender, item, message, now, retry, report)
                except SenderConfigError as err:
                    unusable = err  # nothing was handed over: released below
                    break
                except BaseException as err:
                    # Unknown whether the message left: never risk sending it twice.
                    queue.mark_ambiguous(item.delivery_id, f"interrupted while sending: {err!r}")
                    report.ambiguous += 1
                    done += 1
                    raise
                done += 1
        finally:
            for item in batch[done:]:
                queue.release(item.delivery_id, item.due_at)
                report.released += 1
        if unusable is not None:
            raise unusable
    return report
