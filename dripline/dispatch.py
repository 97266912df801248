"""Dispatch: claim due deliveries, render them through the fast path, send, record.

The dispatcher defines the narrow store interface it needs (:class:`DispatchStore`);
the SQL store implements it. A claimed batch goes out a chunk at a time: the chunk
is rendered, then one transaction records the previous chunk's outcomes and marks
this chunk ``sending``, then its data goes to the sender. A crash therefore leaves
at most one chunk ``ambiguous``; everything else the worker claimed goes back to
``scheduled`` when its lease is found dead (see :mod:`dripline.store._leases`).

A relay that stops answering (K consecutive timeouts or connection failures in a
pass, default 3) is not tried again in that pass: the rest of the claim is
deferred with backoff, and the log says so once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sender import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SendError,
    SendResult,
    TransientSendError,
)
from sender.retry import DEFAULT_RETRY_POLICY, RetryPolicy, next_attempt_at

from ._library import CampaignLibrary, RenderCancelled, StepTooSlowError
from .campaign import campaign_slugs
from .errors import CampaignError, DriplineError
from .experiments import ExperimentJudge, WinnerStore, subject_key
from .ledger import body_digest, campaign_commit, sent_subject
from .render import CompiledStep, Recipient
from .store import AttemptVariant, ClaimedDelivery, Outcome, SettleResult, StoreError

if TYPE_CHECKING:
    from .metrics import RunMetrics

__all__ = [
    "DEFAULT_RELAY_FAILURES",
    "CampaignLibrary",
    "DispatchStore",
    "Dispatcher",
    "PassReport",
    "StepTooSlowError",
    "TrackingLinks",
]

DEFAULT_RELAY_FAILURES = 3

log = logging.getLogger("dripline.dispatch")


class DispatchStore(WinnerStore, Protocol):
    """What dispatch needs from a store (A/B winners too). Every method is one transaction;
    ``clock`` is the wall clock (aware UTC) a message's acceptance is stamped with."""

    clock: Callable[[], datetime]

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries for this worker, oldest first."""

    def settle(
        self,
        outcomes: Sequence[Outcome],
        *,
        attempt: Sequence[int] = (),
        now: datetime,
        variants: Mapping[int, AttemptVariant] | None = None,
    ) -> SettleResult:
        """Record ``outcomes``; move ``attempt`` to ``sending`` (send only ``attempting``),
        with the A/B subject of those in ``variants``."""

    def recover(self) -> None:
        """Hand back what this worker holds (nothing is in flight): after a failed pass."""

    def hold(self, steps: Iterable[tuple[str, str]]) -> None:
        """Claim no deliveries of these (campaign, step identity) pairs."""

    def scheduled_steps(self) -> dict[str, set[str]]:
        """Each campaign's step identities that still have scheduled deliveries."""

    def schedule_version(self) -> int:
        """A number that changes whenever a campaign revision is applied."""

    def link_positions(self, campaign: str, step_id: str, urls: Sequence[str]) -> list[int]:
        """The stable positions of a step's tracked URLs (click tracking)."""


class TrackingLinks(Protocol):
    """Signed per-delivery URLs for click and open tracking (see runtime.tracking_links_for)."""

    def click(self, delivery: ClaimedDelivery, position: int) -> str: ...

    def open(self, delivery: ClaimedDelivery) -> str: ...


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
    skipped: int = 0  # the step's `when` was false for the subscriber
    unrecorded: int = 0  # outcomes for rows this worker no longer held (lease taken over)
    errors: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # "campaign/step-id" not in the files
    # (campaign, step identity) -> "delivery N: why" of each delivery deferred this pass
    # for a campaign problem (a broken file, a `when` failing): one line per step.
    step_deferrals: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, other: PassReport) -> None:
        """Add a finished pass's report (its step deferrals already became error lines)."""
        for f in fields(self):
            if f.name not in _NOT_COUNTS:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.errors += other.errors
        self.held = sorted(set(self.held) | set(other.held))

    def summary(self) -> str:
        parts = [
            f"{f.name} {getattr(self, f.name)}" for f in fields(self) if f.name not in _NOT_COUNTS
        ]
        return ", ".join(parts)

    def close_step_deferrals(self) -> None:
        """Add one error line per step whose deliveries were deferred for a campaign
        problem this pass (the first reason and how many), then forget them."""
        for (campaign, step_id), lines in sorted(self.step_deferrals.items()):
            if len(lines) == 1:
                self.errors.append(lines[0])
            else:
                self.errors.append(
                    f"campaign {campaign}, step {step_id!r}: {len(lines)} deliveries deferred "
                    f"(retried with growing back-off), the first {lines[0]}"
                )
        self.step_deferrals = {}


_NOT_COUNTS = frozenset({"errors", "held", "step_deferrals"})


class _RelayWatch:
    """Counts consecutive timeouts and connection failures against the relay in one pass."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.streak = 0
        self.paused = False
        self._last: object = None
        self._lock = threading.Lock()

    def note(self, outcome: SendResult | SendError) -> bool:
        """Count one outcome; True once the relay is to be left alone for this pass."""
        failed = isinstance(outcome, TransientSendError) and (
            getattr(outcome, "connection_failure", False) or getattr(outcome, "unreachable", False)
        )
        with self._lock:
            if not failed:
                self.streak = 0
            elif outcome is not self._last:  # one "unreachable" is given to a whole chunk
                self._last = outcome
                self.streak += 1
                if self.streak >= self.limit and not self.paused:
                    self.paused = True
                    log.warning(
                        "relay: %d consecutive timeouts or connection failures (last: %s); "
                        "not trying it again this pass, the rest of the claim is deferred",
                        self.streak,
                        outcome,
                    )
            return self.paused


class _EitherEvent(threading.Event):
    """Set when it is set itself or when the outer event (SIGTERM) is."""

    def __init__(self, outer: threading.Event) -> None:
        super().__init__()
        self._outer = outer

    def is_set(self) -> bool:
        return super().is_set() or self._outer.is_set()


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
        relay_failures: int = DEFAULT_RELAY_FAILURES,
        envelope_sender: Callable[[ClaimedDelivery], str] | None = None,
        tracking: TrackingLinks | None = None,
        metrics: RunMetrics | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.library = library
        self.unsubscribe_url = unsubscribe_url
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.retry_policy = retry_policy
        self.stop = stop or threading.Event()
        self.relay_failures = relay_failures
        self._clean = True  # the last pass settled everything it claimed
        self._sending: ThreadPoolExecutor | None = None
        self.project_root = library.campaigns_dir.parent
        self._held: frozenset[tuple[str, str]] = frozenset()
        self._drafts: dict[str, str] = {}  # campaign held as unready -> why (logged once)
        self._held_seen: tuple[int, int] | None = None  # (files generation, schedule version)
        self._files_generation = 0
        self._commit: str | None = None
        # VERP (runtime.envelope_sender_maker): a per-delivery envelope sender; else From.
        self.envelope_sender = envelope_sender
        # delivery id -> the A/B subject rendered for it: recorded with its move to
        # 'sending' and again with the sent outcome.
        self._variant_of: dict[int, AttemptVariant] = {}
        self.experiments = ExperimentJudge(store)  # A/B winners, judged once per step per pass
        # Click/open tracking URLs; None: tracked campaigns are sent with their plain links.
        self.tracking = tracking
        self._positions: dict[tuple[str, str, tuple[str, ...]], tuple[int, ...]] = {}
        self.metrics = metrics  # dripline run --metrics-port (dripline.metrics)

    def dispatch_due(self, now: datetime) -> PassReport:
        """Claim and send batches until nothing is due at ``now`` (or a stop is asked).

        Deliveries are rendered by step identity from the files as they are now (a
        content edit goes out at once); a step whose file is gone is held (not sent, not
        failed, one warning per pass) until ``dripline apply`` cancels it.
        """
        started = time.monotonic()
        if self.metrics is not None:
            self.metrics.begin_pass()
        try:
            return self._dispatch_due(now)
        finally:
            if self.metrics is not None:
                self.metrics.pass_duration.observe(time.monotonic() - started)
                self._observe_queue()

    def _observe_queue(self) -> None:
        assert self.metrics is not None
        try:
            self.metrics.leases(getattr(self.store, "lease_expiries", 0))
            depth = getattr(self.store, "queue_depth", None)
            if depth is not None:
                self.metrics.depth(depth)
        except Exception as err:  # metrics never stop sending
            log.warning("metrics: queue depth not read: %s", err)

    def _dispatch_due(self, now: datetime) -> PassReport:
        report = PassReport()
        if self.library.refresh():
            self._files_generation += 1
            log.info("campaign or template files changed: reloaded")
        if not self._clean:
            self.store.recover()
        self._hold_removed_steps(report)
        self._commit = None
        self._variant_of.clear()  # nothing is in flight between passes
        self.experiments.new_pass(now)
        self._judge_ready_tests()
        first = True
        relay = _RelayWatch(self.relay_failures)
        self._clean = False
        while not self.stop.is_set() and not relay.paused:
            # Until a claim comes back empty: one claim takes only one step per subscriber
            # of the rows it reads, so a short claim does not mean nothing else is due.
            batch = self.store.claim_due(now, self.batch_size)
            if not batch:
                break
            if first:  # once per pass, and only when something goes out
                self._commit = campaign_commit(self.project_root)
                first = False
            report.claimed += len(batch)
            if self.metrics is not None:
                for delivery in batch:
                    lateness = (now - delivery.due_at).total_seconds()
                    self.metrics.claim_latency.observe(max(0.0, lateness))
            self._send_batch(batch, now, report, relay)
        report.close_step_deferrals()
        self._clean = True
        return report

    def _judge_ready_tests(self) -> None:
        """Give every A/B test its one look when it is ready, whether or not a message of
        its step goes out this pass: one indexed read per step once decided, one grouped
        count before. A campaign that does not load is left to its own deferral."""
        for slug in campaign_slugs(self.library.campaigns_dir):
            try:
                if self.library.unready(slug) is not None:
                    continue
                campaign = self.library.campaign(slug)
            except DriplineError:  # a broken campaign: its deliveries say so, once per pass
                continue
            if campaign.winner_after is None or not campaign.tracking.clicks:
                continue
            try:
                for step in campaign.steps:
                    if len(step.subjects) >= 2:
                        self.experiments.judge(campaign, step)
            except StoreError as err:  # the database is away: sending finds out too
                log.warning("campaign %s: A/B tests not judged this pass: %s", slug, err)

    def _hold_removed_steps(self, report: PassReport) -> None:
        """Hold scheduled deliveries of steps no campaign file has (until applied), and
        every delivery of a campaign that must not be sent as it is (until fixed)."""
        seen = (self._files_generation, self.store.schedule_version())
        if seen != self._held_seen:
            held: set[tuple[str, str]] = set()
            scheduled = self.store.scheduled_steps()
            for campaign, identities in scheduled.items():
                current = self.library.step_ids(campaign)
                if current is not None:  # a broken campaign defers instead (see _send_batch)
                    held |= {(campaign, i) for i in identities if i not in current}
            self._held = frozenset(held)
            slugs = set(scheduled) | set(campaign_slugs(self.library.campaigns_dir))
            self.store.hold(held | self._hold_unready(slugs, scheduled))
            self._held_seen = seen
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

    def _hold_unready(
        self, campaigns: set[str], scheduled: dict[str, set[str]]
    ) -> set[tuple[str, str]]:
        """Every step of each campaign the library's ``vet`` refuses (placeholders left in
        it): its deliveries wait, neither sent nor failed nor retried, until the files are
        fixed, while other campaigns go on. Each is logged once (and again if the reason
        changes)."""
        held: set[tuple[str, str]] = set()
        drafts: dict[str, str] = {}
        for slug in sorted(campaigns):
            unready = self.library.unready(slug)
            if unready is None:
                continue
            err, loaded = unready
            held |= {(slug, i) for i in set(loaded.step_ids) | scheduled.get(slug, set())}
            drafts[slug] = str(err)
            if self._drafts.get(slug) != drafts[slug]:
                log.warning(
                    "campaign %s is held: %s; its deliveries wait (not sent, not failed) "
                    "until the files are fixed (`dripline check %s` lists every problem)",
                    slug,
                    err,
                    slug,
                )
        for slug in sorted(set(self._drafts) - set(drafts)):
            log.warning("campaign %s is no longer held: its deliveries go out again", slug)
        self._drafts = drafts
        return held

    def _send_batch(
        self,
        batch: Sequence[ClaimedDelivery],
        now: datetime,
        report: PassReport,
        relay: _RelayWatch,
    ) -> None:
        """Send a claimed batch chunk by chunk (see the module docstring).

        Whatever happens, nothing claimed is stranded: a delivery is recorded (sent,
        deferred, failed, ambiguous) or handed back untried. Only a crash of the process
        leaves rows ``claimed`` (handed back by the next worker) or ``sending`` (at most
        one chunk, made ``ambiguous``).
        """
        lock = threading.Lock()
        outcomes: list[Outcome] = []  # written with the next chunk's move to 'sending'
        in_flight: dict[int, ClaimedDelivery] = {}  # 'sending', no outcome yet
        rendered: list[ClaimedDelivery] = []  # taken from the batch, not yet 'sending'
        sending: Future[object] | None = None  # the chunk the sender is working on
        size = self.chunk_size * max(1, getattr(self.sender, "parallelism", 1))
        position = 0
        try:
            while position < len(batch) and not self.stop.is_set() and not relay.paused:
                chunk = batch[position : position + size]
                position += len(chunk)
                rendered = list(chunk)
                # Rendered while the sender still works on the previous chunk.
                ready: list[tuple[ClaimedDelivery, OutgoingMessage]] = []
                failures: list[Outcome] = []
                for delivery in chunk:
                    message = self._render(delivery, now, report)
                    if isinstance(message, Outcome):
                        failures.append(message)
                    else:
                        ready.append((delivery, message))
                if sending is not None:
                    sending, done = None, sending
                    done.result()
                if self.stop.is_set() or relay.paused:
                    break  # this chunk stays untried (handed back below)
                rendered = []
                with lock:
                    outcomes.extend(failures)
                    settled = self._settle(outcomes, [d.delivery_id for d, _ in ready], now, report)
                    outcomes.clear()
                ready = [(d, m) for d, m in ready if d.delivery_id in settled.attempting]
                in_flight.update((d.delivery_id, d) for d, _ in ready)
                halt = _EitherEvent(self.stop)

                def on_result(
                    index: int,
                    result: SendResult | SendError,
                    ready: list[tuple[ClaimedDelivery, OutgoingMessage]] = ready,
                    halt: threading.Event = halt,
                ) -> None:
                    delivery, message = ready[index]
                    with lock:  # outcomes arrive from the sender's worker threads
                        in_flight.pop(delivery.delivery_id, None)
                        outcomes.append(self._outcome(delivery, message, result, now, report))
                    if relay.note(result):
                        halt.set()  # start no further message on this relay

                sending = self._sender_thread().submit(
                    self.sender.send_many, [m for _, m in ready], on_result=on_result, stop=halt
                )
            if sending is not None:
                sending, done = None, sending
                done.result()
        finally:
            if sending is not None:  # an exception above: let the chunk in flight end first
                futures_wait([sending])
            # Asked to stop, the relay given up on, the sender unusable, or a bug: what
            # was never tried goes back (deferred with backoff when the relay is down).
            with lock:
                untried = [*in_flight.values(), *rendered, *batch[position:]]
                for delivery in untried:
                    outcomes.append(self._untried(delivery, now, relay.paused, report))
            if outcomes:
                self._settle(outcomes, [], now, report)

    def _sender_thread(self) -> ThreadPoolExecutor:
        """One thread that runs ``send_many``, so the next chunk renders meanwhile."""
        if self._sending is None:
            self._sending = ThreadPoolExecutor(1, thread_name_prefix="dripline-send")
        return self._sending

    def close(self) -> None:
        """Stop the sending thread (the sender and store are the caller's to close)."""
        if self._sending is not None:
            self._sending.shutdown(wait=True)
            self._sending = None

    def _settle(
        self, outcomes: list[Outcome], attempt: list[int], now: datetime, report: PassReport
    ) -> SettleResult:
        if not outcomes and not attempt:
            return SettleResult(frozenset())
        variants = {i: self._variant_of[i] for i in attempt if i in self._variant_of}
        settled = self.store.settle(list(outcomes), attempt=attempt, now=now, variants=variants)
        if self.metrics is not None:
            self.metrics.publish(report)
        if settled.unrecorded:
            report.unrecorded += len(settled.unrecorded)
            log.warning(
                "%d outcome(s) not recorded: this worker no longer held those deliveries "
                "(its lease was taken over?): %s",
                len(settled.unrecorded),
                ", ".join(map(str, settled.unrecorded[:10])),
            )
        return settled

    def _untried(
        self, delivery: ClaimedDelivery, now: datetime, relay_down: bool, report: PassReport
    ) -> Outcome:
        if relay_down:
            return self._retry_later(delivery, now, "not tried: the relay is not answering", report)
        report.released += 1
        return Outcome(delivery.delivery_id, "released")

    def _render(
        self, delivery: ClaimedDelivery, now: datetime, report: PassReport
    ) -> OutgoingMessage | Outcome:
        """The message, or the outcome of a delivery that cannot be rendered."""
        try:
            compiled = self.library.step_by_id(
                delivery.campaign, delivery.step_id, cancel=self.stop
            )
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
            # `when` against the subscriber's attributes as claimed now; an expression that
            # fails for them raises CampaignError: deferred like a broken file.
            if not self.library.step_applies(compiled, delivery.email, fields_, cancel=self.stop):
                report.skipped += 1
                return Outcome(delivery.delivery_id, "skipped", last_step=self._is_last(delivery))
            variant = None
            subjects = compiled.step.subjects
            if subjects:  # an A/B test: the subscriber's own variant (every worker), or the winner
                try:
                    index = self.experiments.variant(
                        compiled.campaign,
                        compiled.step,
                        delivery.public_key,
                        delivery.subject_key,  # a re-send keeps the subject it had
                    )
                except StoreError as err:  # the database is away: not this message's fault
                    return self._retry_later(delivery, now, f"A/B winner: {err}", report)
                compiled = self.library.step_variant(compiled, index, cancel=self.stop)
                variant = (index + 1, subject_key(subjects[index]))
            try:
                links, open_url = self._tracking(compiled, delivery)
            except Exception as err:  # the database is away: not this message's fault
                return self._retry_later(delivery, now, f"tracked links: {err}", report)
            recipient = Recipient(
                delivery.email, fields_, self.unsubscribe_url(delivery), links, open_url
            )
            message_id, data = self.library.render_bytes(
                compiled, recipient, now=now, cancel=self.stop
            )
            if variant is not None:  # recorded with 'sending' (_settle) and 'sent' (_outcome)
                self._variant_of[delivery.delivery_id] = AttemptVariant(
                    *variant, sent_subject(data) or ""
                )
        except RenderCancelled:  # SIGTERM while a template ran: handed back (and counted)
            return Outcome(delivery.delivery_id, "released")  # with the untried chunk
        except CampaignError as err:
            # The campaign's files are broken (an edit in progress?) or a step's template
            # runs away: not this subscriber's fault, so retry later like a busy relay.
            key = (delivery.campaign, delivery.step_id)
            report.step_deferrals.setdefault(key, []).append(
                f"delivery {delivery.delivery_id}: {err}"
            )
            return self._retry_later(delivery, now, f"campaign: {err}", report, unsent=True)
        except Exception as err:
            # This subscriber's message cannot be rendered (data a template trips on):
            # this delivery fails; the batch goes on.
            if not isinstance(err, DriplineError):
                err = DriplineError(f"{type(err).__name__}: {err}")
            report.failed += 1
            report.errors.append(f"delivery {delivery.delivery_id}: {err}")
            log.warning("delivery %s not rendered: %s", delivery.delivery_id, err)
            return Outcome(delivery.delivery_id, "failed", error=f"render: {err}")
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

    def _tracking(
        self, compiled: CompiledStep, delivery: ClaimedDelivery
    ) -> tuple[tuple[str, ...], str]:
        """This delivery's tracked link URLs and open image URL (empty when not tracked)."""
        tracking = compiled.campaign.tracking
        if self.tracking is None or not (tracking.clicks or tracking.opens):
            return (), ""
        links: tuple[str, ...] = ()
        if compiled.tracked_urls:
            key = (delivery.campaign, delivery.step_id, compiled.tracked_urls)
            positions = self._positions.get(key)
            if positions is None:
                positions = tuple(self.store.link_positions(*key))
                self._positions[key] = positions
            links = tuple(self.tracking.click(delivery, p) for p in positions)
        return links, self.tracking.open(delivery) if tracking.opens else ""

    def _outcome(
        self,
        delivery: ClaimedDelivery,
        message: OutgoingMessage,
        result: SendResult | SendError,
        now: datetime,
        report: PassReport,
    ) -> Outcome:
        delivery_id = delivery.delivery_id
        chosen = self._variant_of.pop(delivery_id, None)
        variant = chosen.variant if chosen is not None else None
        if isinstance(result, SendResult):
            last = self._is_last(delivery)
            report.sent += 1
            return Outcome(
                delivery_id,
                "sent",
                message_id=message.message_id,
                sent_at=now,  # the pass's clock; accepted_at: this message's own moment
                accepted_at=self.store.clock(),
                reply=result.reply,
                last_step=last,
                subject=sent_subject(message.data),
                body_digest=body_digest(message.data),
                campaign_commit=self._commit,
                subject_variant=variant,
            )
        detail = _describe(result)
        if self.metrics is not None:
            self.metrics.sender_error(result)
        if isinstance(result, TransientSendError) and result.ambiguous:
            report.ambiguous += 1
            return Outcome(delivery_id, "ambiguous", error=detail)
        if isinstance(result, TransientSendError):
            return self._retry_later(delivery, now, detail, report)
        if isinstance(result, PermanentSendError) and result.bounce:
            report.bounced += 1
            return Outcome(delivery_id, "bounced", error=detail)
        report.failed += 1
        return Outcome(delivery_id, "failed", error=detail)

    def _is_last(self, delivery: ClaimedDelivery) -> bool:
        """Whether ``delivery`` is its campaign's last step (its enrollment may complete)."""
        try:
            identities = self.library.campaign(delivery.campaign).step_ids
            return delivery.step_id == identities[-1] or delivery.step >= len(identities)
        except DriplineError:  # never let a campaign question lose an outcome
            return True

    def _retry_later(
        self,
        delivery: ClaimedDelivery,
        now: datetime,
        detail: str,
        report: PassReport,
        *,
        unsent: bool = False,
    ) -> Outcome:
        """Back to ``scheduled`` at the next backoff time, or failed once past the deadline.

        ``unsent``: nothing was sent (a campaign problem found while rendering); the
        deferral still counts as an attempt so the back-off grows (5 minutes, 10, 20...
        up to the policy's cap) instead of coming back every 5 minutes. No deadline
        applies before a first real send attempt: fixing the files or the subscriber's
        attributes lets it go.
        """
        when = next_attempt_at(
            first_attempt_at=delivery.first_attempt_at or now,
            attempts=delivery.attempt,
            now=now,
            policy=self.retry_policy,
        )
        if when is None:
            report.failed += 1
            return Outcome(
                delivery.delivery_id,
                "failed",
                error=f"gave up after {delivery.attempt} attempts: {detail}",
            )
        report.deferred += 1
        return Outcome(
            delivery.delivery_id, "deferred", error=detail, next_at=when, counts_attempt=unsent
        )


def _describe(error: SendError) -> str:
    """What to store about a failure: the reply, with its enhanced status code."""
    parts = [str(error.code)] if error.code else []
    if error.enhanced_status:
        parts.append(error.enhanced_status)
    reply = error.reply or str(error)
    text = " ".join(parts)
    return f"{text} {reply}".strip() if text and not reply.startswith(text) else reply
