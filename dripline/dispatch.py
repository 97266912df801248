"""Dispatch: claim due deliveries, render them through the fast path, send, record.

The dispatcher defines the narrow store interface it needs (:class:`DispatchStore`);
the SQL store implements it. Each outcome is recorded in its own transaction as
soon as the sender answers, so a crash loses at most the message in flight, and
that one stays in ``sending`` (reported by ``dripline status``, never re-sent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sender import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SendError,
    SendResult,
    TransientSendError,
)
from sender.retry import DEFAULT_RETRY_POLICY, RetryPolicy, next_attempt_at

from .campaign import Campaign, load_campaign
from .errors import CampaignError, DriplineError
from .ledger import body_digest, campaign_commit, sent_subject
from .render import CampaignRenderer, CompiledStep, Recipient
from .store import ClaimedDelivery

__all__ = ["CampaignLibrary", "DispatchStore", "Dispatcher", "PassReport"]

log = logging.getLogger("dripline.dispatch")


class DispatchStore(Protocol):
    """What dispatch needs from a store. Every method is one transaction."""

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]:
        """Move up to ``limit`` due deliveries to ``sending`` and return them, oldest first."""

    def mark_sent(
        self,
        delivery_id: int,
        *,
        message_id: str,
        sent_at: datetime,
        reply: str | None = None,
        last_step: bool = True,
        subject: str | None = None,
        body_digest: str | None = None,
        campaign_commit: str | None = None,
    ) -> None: ...

    def mark_failed(self, delivery_id: int, error: str) -> None: ...

    def mark_deferred(self, delivery_id: int, next_at: datetime, error: str) -> None: ...

    def mark_ambiguous(self, delivery_id: int, error: str) -> None: ...

    def mark_bounced(self, delivery_id: int, error: str) -> None:
        """Fail this delivery and mark its subscriber bounced (every campaign stops)."""

    def release(self, delivery_ids: Sequence[int]) -> None:
        """Put claimed deliveries that were never attempted back to ``scheduled``."""

    def hold(self, steps: Iterable[tuple[str, str]]) -> None:
        """Claim no deliveries of these (campaign, step identity) pairs."""

    def scheduled_steps(self) -> dict[str, set[str]]:
        """Each campaign's step identities that still have scheduled deliveries."""

    def schedule_version(self) -> int:
        """A number that changes whenever a campaign revision is applied."""


@dataclass
class PassReport:
    """What one dispatch pass did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    ambiguous: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # "campaign/step-id" not in the files

    def add(self, other: PassReport) -> None:
        for f in fields(self):
            if f.name not in ("errors", "held"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.errors += other.errors
        self.held = sorted(set(self.held) | set(other.held))

    def summary(self) -> str:
        parts = [
            f"{f.name} {getattr(self, f.name)}"
            for f in fields(self)
            if f.name not in ("errors", "held")
        ]
        return ", ".join(parts)


class CampaignLibrary:
    """Campaigns and their compiled steps by slug, loaded on first use.

    :meth:`refresh` (called at the start of every dispatch pass) drops what was
    loaded when a file under ``campaigns/`` or ``templates/`` changed, so a long
    running ``dripline run`` sends what is in git now, not what was there at start.
    """

    def __init__(self, campaigns_dir: Path, templates_dir: Path) -> None:
        self.campaigns_dir = campaigns_dir
        self.templates_dir = templates_dir
        self._renderers: dict[str, CampaignRenderer] = {}
        self._signature = self._files_signature()

    def _files_signature(self) -> tuple[int, int]:
        """(newest modification time, number of files) of the campaign and template files."""
        newest = count = 0
        for folder in (self.campaigns_dir, self.templates_dir):
            if folder.is_dir():
                for path in folder.rglob("*"):
                    try:
                        newest = max(newest, path.stat().st_mtime_ns)
                    except OSError:  # removed while we looked
                        continue
                    count += 1
        return newest, count

    def refresh(self) -> bool:
        """Forget loaded campaigns if their files changed; True when it did."""
        signature = self._files_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        self._renderers.clear()
        return True

    def renderer(self, slug: str) -> CampaignRenderer:
        if slug not in self._renderers:
            campaign = load_campaign(self.campaigns_dir / slug)
            self._renderers[slug] = CampaignRenderer(campaign, self.templates_dir)
        return self._renderers[slug]

    def campaign(self, slug: str) -> Campaign:
        return self.renderer(slug).campaign

    def step(self, slug: str, number: int) -> CompiledStep:
        return self.renderer(slug).step(number)

    def step_by_id(self, slug: str, identity: str) -> CompiledStep | None:
        """The compiled step with ``identity`` as the files have it now, or None if gone."""
        renderer = self.renderer(slug)
        step = renderer.campaign.step_by_id(identity)
        return None if step is None else renderer.step(step.number)

    def step_ids(self, slug: str) -> tuple[str, ...] | None:
        """The campaign's step identities, or None when it does not load."""
        try:
            return self.campaign(slug).step_ids
        except DriplineError:
            return None


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Dispatcher:
    """Sends what is due: ``dispatch_due(now)`` runs one pass until nothing is due."""

    def __init__(
        self,
        store: DispatchStore,
        sender: Sender,
        library: CampaignLibrary,
        unsubscribe_url: Callable[[ClaimedDelivery], str],
        *,
        batch_size: int = 500,
        chunk_size: int = 64,
        retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY,
        stop: threading.Event | None = None,
        envelope_sender: Callable[[ClaimedDelivery], str] | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.library = library
        self.unsubscribe_url = unsubscribe_url
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.retry_policy = retry_policy
        self.stop = stop or threading.Event()
        self.project_root = library.campaigns_dir.parent
        self._held: frozenset[tuple[str, str]] = frozenset()
        self._held_seen: tuple[int, int] | None = None  # (files generation, schedule version)
        self._files_generation = 0
        self._commit: str | None = None
        # VERP (runtime.envelope_sender_maker): a per-delivery envelope sender; else From.
        self.envelope_sender = envelope_sender

    def dispatch_due(self, now: datetime) -> PassReport:
        """Claim and send batches until nothing is due at ``now`` (or a stop is asked).

        Deliveries are rendered by step identity from the files as they are now (a
        content edit goes out at once); a step whose file is gone is held (not sent, not
        failed, one warning per pass) until ``dripline apply`` cancels it.
        """
        report = PassReport()
        if self.library.refresh():
            self._files_generation += 1
            log.info("campaign or template files changed: reloaded")
        self._hold_removed_steps(report)
        self._commit = None
        first = True
        while not self.stop.is_set():
            # Until a claim comes back empty: one claim takes only one step per subscriber
            # of the rows it reads, so a short claim does not mean nothing else is due.
            batch = self.store.claim_due(now, self.batch_size)
            if not batch:
                break
            if first:  # once per pass, and only when something goes out
                self._commit = campaign_commit(self.project_root)
                first = False
            report.claimed += len(batch)
            self._send_batch(batch, now, report)
        return report

    def _hold_removed_steps(self, report: PassReport) -> None:
        """Hold scheduled deliveries of steps no campaign file has (until applied)."""
        seen = (self._files_generation, self.store.schedule_version())
        if seen != self._held_seen:
            held: set[tuple[str, str]] = set()
            for campaign, identities in self.store.scheduled_steps().items():
                current = self.library.step_ids(campaign)
                if current is not None:  # a broken campaign defers instead (see _send_batch)
                    held |= {(campaign, i) for i in identities if i not in current}
            self._held = frozenset(held)
            self._held_seen = seen
            self.store.hold(self._held)
        for campaign, identity in sorted(self._held):
            report.held.append(f"{campaign}/{identity}")
            log.warning(
                "campaign %s: step %r has no file any more; its scheduled deliveries are held "
                "(not sent, not failed): see `dripline plan %s`, then `dripline apply %s`",
                campaign,
                identity,
                campaign,
                campaign,
            )

    def _send_batch(
        self, batch: Sequence[ClaimedDelivery], now: datetime, report: PassReport
    ) -> None:
        """Send a claimed batch chunk by chunk, recording each outcome as it arrives.

        Whatever happens, nothing claimed is stranded: a delivery is either recorded
        (sent, deferred, failed, ambiguous) or handed back with ``release`` untried. Only
        a crash of the process itself leaves rows in ``sending`` (never re-sent).
        """
        untried = {d.delivery_id for d in batch}
        lock = threading.Lock()
        try:
            for chunk in _chunks(batch, self.chunk_size):
                if self.stop.is_set():
                    break
                ready: list[tuple[ClaimedDelivery, OutgoingMessage]] = []
                for delivery in chunk:
                    try:
                        message = self._render(delivery, now, report)
                    except CampaignError as err:
                        # The campaign's files are broken (an edit in progress?): not this
                        # subscriber's fault, so retry later like a busy relay.
                        untried.discard(delivery.delivery_id)
                        report.errors.append(f"delivery {delivery.delivery_id}: {err}")
                        self._retry_later(delivery, now, f"campaign: {err}", report)
                        continue
                    if message is None:  # recorded as failed already
                        untried.discard(delivery.delivery_id)
                    else:
                        ready.append((delivery, message))

                def on_result(
                    index: int, outcome: SendResult | SendError, ready: list = ready
                ) -> None:
                    delivery, message = ready[index]
                    with lock:  # outcomes arrive from the sender's worker threads
                        untried.discard(delivery.delivery_id)
                        self._record(delivery, message, outcome, now, report)

                self.sender.send_many([m for _, m in ready], on_result=on_result, stop=self.stop)
        finally:
            # Asked to stop, the sender unusable, or a bug: what was never tried goes back.
            if untried:
                self.store.release(sorted(untried))
                report.released += len(untried)

    def _render(
        self, delivery: ClaimedDelivery, now: datetime, report: PassReport
    ) -> OutgoingMessage | None:
        try:
            compiled = self.library.step_by_id(delivery.campaign, delivery.step_id)
            if compiled is None:
                # Removed from the files after this pass began: back to the queue, held
                # from the next pass on.
                raise CampaignError(
                    f"step {delivery.step_id!r} is no longer in campaign {delivery.campaign!r}"
                )
            fields_ = {
                **dict(delivery.attributes),
                "name": delivery.name,
                "first_name": delivery.first_name,
                "timezone": delivery.timezone,
            }
            recipient = Recipient(delivery.email, fields_, self.unsubscribe_url(delivery))
            message_id, data = compiled.render_bytes(recipient, now=now)
        except CampaignError:
            raise  # the campaign's files are broken: the caller retries later
        except Exception as err:
            # This subscriber's message cannot be rendered (data a template trips on):
            # this delivery fails; the batch goes on.
            if not isinstance(err, DriplineError):
                err = DriplineError(f"{type(err).__name__}: {err}")
            self.store.mark_failed(delivery.delivery_id, f"render: {err}")
            report.failed += 1
            report.errors.append(f"delivery {delivery.delivery_id}: {err}")
            log.warning("delivery %s not rendered: %s", delivery.delivery_id, err)
            return None
        return OutgoingMessage(
            envelope_from=(
                self.envelope_sender(delivery)
                if self.envelope_sender is not None
                else compiled.campaign.from_address
            ),
            recipients=(delivery.email,),
            data=data,
            message_id=message_id,
        )

    def _record(
        self,
        delivery: ClaimedDelivery,
        message: OutgoingMessage,
        result: SendResult | SendError,
        now: datetime,
        report: PassReport,
    ) -> None:
        store, delivery_id = self.store, delivery.delivery_id
        if isinstance(result, SendResult):
            try:
                identities = self.library.campaign(delivery.campaign).step_ids
                last = delivery.step_id == identities[-1] or delivery.step >= len(identities)
            except DriplineError:  # never let a campaign question lose a sent outcome
                last = True
            store.mark_sent(
                delivery_id,
                message_id=message.message_id,
                sent_at=now,
                reply=result.reply,
                last_step=last,
                subject=sent_subject(message.data),
                body_digest=body_digest(message.data),
                campaign_commit=self._commit,
            )
            report.sent += 1
            return
        detail = _describe(result)
        if isinstance(result, TransientSendError) and result.ambiguous:
            store.mark_ambiguous(delivery_id, detail)
            report.ambiguous += 1
        elif isinstance(result, TransientSendError):
            self._retry_later(delivery, now, detail, report)
        elif isinstance(result, PermanentSendError) and result.bounce:
            store.mark_bounced(delivery_id, detail)
            report.bounced += 1
        else:
            store.mark_failed(delivery_id, detail)
            report.failed += 1

    def _retry_later(
        self, delivery: ClaimedDelivery, now: datetime, detail: str, report: PassReport
    ) -> None:
        """Back to ``scheduled`` at the next backoff time, or failed once past the deadline."""
        when = next_attempt_at(
            first_attempt_at=delivery.first_attempt_at or now,
            attempts=delivery.attempt,
            now=now,
            policy=self.retry_policy,
        )
        if when is None:
            self.store.mark_failed(
                delivery.delivery_id, f"gave up after {delivery.attempt} attempts: {detail}"
            )
            report.failed += 1
        else:
            self.store.mark_deferred(delivery.delivery_id, when, detail)
            report.deferred += 1


def _describe(error: SendError) -> str:
    """What to store about a failure: the reply, with its enhanced status code."""
    parts = [str(error.code)] if error.code else []
    if error.enhanced_status:
        parts.append(error.enhanced_status)
    reply = error.reply or str(error)
    text = " ".join(parts)
    return f"{text} {reply}".strip() if text and not reply.startswith(text) else reply
