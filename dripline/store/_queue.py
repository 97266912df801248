"""The dispatcher's view of the store: claim due deliveries under a lease, record outcomes.

Every call is one transaction. A claim moves rows from ``scheduled`` to ``claimed``
and names this worker (see :mod:`._leases`); :meth:`SqlDeliveryQueue.settle` moves a
small group to ``sending`` just before its data goes to the sender and records the
previous group's outcomes. Only a row this worker still holds can be recorded, so a
delivery is never recorded (or sent) twice. After a crash the dead worker's
``claimed`` rows go back to ``scheduled`` and its ``sending`` rows (at most one
group) become ``ambiguous``, by whichever worker or command touches the queue next.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, select, update

from ..errors import DriplineError
from ..timetable import Timetable
from ._bounce_models import Suppression
from ._bulk import BulkWriter
from ._claim_rules import hold_back_out_of_order, retime_later_steps
from ._engine import StoreError, read_transaction, write_transaction
from ._experiments import Decision, StoredWinner, VariantTally, judge_experiment
from ._fastwrite import FastWriter
from ._leases import (
    DEFAULT_LEASE_SECONDS,
    Clock,
    expire_dead_workers,
    register_worker,
    renew_worker,
    utc_now,
)
from ._models import (
    DELIVERY_STATUSES,
    CampaignRevision,
    Delivery,
    Enrollment,
    Subscriber,
    Worker,
    new_public_key,
)
from ._outcomes import AttemptVariant, Outcome, SettleResult, settle
from ._skip_slots import free_skipped_slots
from ._tracking import link_positions
from ._values import from_db_time, to_db_time

__all__ = [
    "ClaimedDelivery",
    "DeliveryQueue",
    "DeliveryStateError",
    "SqlDeliveryQueue",
]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_R = CampaignRevision.__table__
_W = Worker.__table__
_SUPPRESSED = Suppression.__table__
_READS_PER_CLAIM = 4


class DeliveryStateError(DriplineError):
    """An outcome was recorded for a delivery that is not being sent."""


@dataclass(frozen=True)
class ClaimedDelivery:
    """Everything rendering and sending one email needs."""

    delivery_id: int
    enrollment_id: int
    campaign: str
    step: int
    due_at: datetime  # aware UTC
    attempt: int  # 1 for the first try
    email: str
    name: str
    first_name: str
    timezone: str | None
    attributes: Mapping[str, Any]
    first_attempt_at: datetime | None = None  # when this delivery was first tried (retries)
    # The subscriber's random key, for the unsubscribe link (dripline.serve.unsubscribe_url_for).
    public_key: str = ""
    step_id: str = ""  # the step's identity: what is rendered (``step`` only orders)
    # The A/B variant recorded for it when it last went to 'sending' (a retry, a requeued
    # ambiguous send): re-sent with that subject while its text is among the step's.
    subject_key: str | None = None


class DeliveryQueue(Protocol):
    """What the dispatcher needs from a store; each method is its own transaction."""

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]: ...

    def settle(
        self,
        outcomes: Sequence[Outcome],
        *,
        attempt: Sequence[int] = (),
        now: datetime,
        variants: Mapping[int, AttemptVariant] | None = None,
    ) -> SettleResult: ...


_CANDIDATES = (
    select(
        _D.c.id,
        _D.c.enrollment_id,
        _D.c.step,
        _D.c.due_at,
        _D.c.attempts,
        _E.c.campaign,
        _E.c.status.label("enrollment_status"),
        _S.c.status.label("subscriber_status"),
        _S.c.email,
        _S.c.name,
        _S.c.first_name,
        _S.c.timezone,
        _S.c.attributes,
        _D.c.first_attempt_at,
        _S.c.id.label("subscriber_id"),
        _S.c.public_key,
        _SUPPRESSED.c.id.label("suppression_id"),
        _D.c.step_id,
        _D.c.subject_key,
    )
    .join(_E, _E.c.id == _D.c.enrollment_id)
    .join(_S, _S.c.id == _E.c.subscriber_id)
    .outerjoin(_SUPPRESSED, _SUPPRESSED.c.email_key == _S.c.email_key)
    .where(_D.c.status == "scheduled", _D.c.due_at <= bindparam("now"))
    .order_by(_D.c.due_at, _D.c.id)
    .limit(bindparam("limit"))
)


def _ensure_public_keys(conn: Connection, rows: list[Any]) -> dict[int, str]:
    """Each claimed subscriber's public key, giving one to rows inserted without it."""
    keys = {r.subscriber_id: r.public_key for r in rows}
    missing = [{"row_id": i, "new_key": new_public_key()} for i, k in keys.items() if not k]
    if missing:
        conn.execute(
            update(_S)
            .where(_S.c.id == bindparam("row_id"), _S.c.public_key.is_(None))
            .values(public_key=bindparam("new_key")),
            missing,
        )
        ids = [m["row_id"] for m in missing]
        keys.update(conn.execute(select(_S.c.id, _S.c.public_key).where(_S.c.id.in_(ids))).all())
    return keys


class SqlDeliveryQueue:
    """:class:`DeliveryQueue` over SQLAlchemy (SQLite or PostgreSQL), as one worker.

    ``timetable_for`` gives a campaign's timetable by slug; the claim needs it to
    re-time the steps after an outage. ``lease_seconds`` is how long this worker's
    claims stay its own without a heartbeat (``dripline run --lease``); ``clock`` is the
    wall clock leases are measured on (aware UTC; tests pass their own).
    """

    def __init__(
        self,
        engine: Engine,
        timetable_for: Callable[[str], Timetable],
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        clock: Clock = utc_now,
    ):
        if lease_seconds <= 0:
            raise DriplineError("the lease must be a positive number of seconds")
        self.engine = engine
        self.timetable_for = timetable_for
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.lease_expiries = 0  # dead workers whose leases this worker expired (a count)
        query = _CANDIDATES
        if engine.dialect.name == "postgresql":
            # Locking the enrollment too keeps two workers from each taking a different
            # overdue step of one subscriber.
            query = query.with_for_update(skip_locked=True, of=[_D, _E])
        self._base_candidates = self._candidates = query
        self._held: frozenset[tuple[str, str]] = frozenset()
        self._writer = FastWriter(engine)
        self.worker_id: int | None = None  # registered on the first claim
        self._renewed_at: datetime | None = None
        # The heartbeat thread and the claim/settle path both renew the lease: one at a
        # time, and never while the claim that registers this worker is still uncommitted
        # (its row is invisible to another connection, which would insert it again).
        self._lease_lock = threading.RLock()

    # -- the lease ----------------------------------------------------------------

    def _hold_lease(self, conn: Connection, wall: datetime) -> int:
        """Register this worker, or renew its lease once a third of it has passed."""
        if self.worker_id is None:
            self.worker_id = register_worker(conn, wall, self.lease_seconds)
            self._renewed_at = wall
        elif self._renewal_due(wall):
            renew_worker(conn, self.worker_id, wall, self.lease_seconds)
            self._renewed_at = wall
        return self.worker_id

    def _renewal_due(self, wall: datetime) -> bool:
        return self._renewed_at is None or wall - self._renewed_at >= timedelta(
            seconds=self.lease_seconds / 3
        )

    def heartbeat(self) -> None:
        """Renew this worker's lease now (``dripline run`` calls it every third of a lease)."""
        with self._lease_lock:
            if self.worker_id is None:
                return
            wall = self.clock()
            with write_transaction(self.engine) as conn:
                renew_worker(conn, self.worker_id, wall, self.lease_seconds)
            self._renewed_at = wall

    # -- claiming -----------------------------------------------------------------

    def hold(self, steps: Iterable[tuple[str, str]]) -> None:
        """Leave deliveries of these (campaign, step identity) pairs unclaimed from now on.

        A step whose file is gone is held until ``dripline apply`` cancels it (or the file
        comes back); the filter is part of the claim's SQL, so held rows never fill a batch.
        """
        held = frozenset(steps)
        if held == self._held:
            return
        self._held = held
        query = self._base_candidates
        for campaign, step_id in sorted(held):
            query = query.where(~and_(_E.c.campaign == campaign, _D.c.step_id == step_id))
        self._candidates = query

    def scheduled_steps(self) -> dict[str, set[str]]:
        """Each campaign's step identities that still have scheduled deliveries."""
        found: dict[str, set[str]] = {}
        with read_transaction(self.engine) as conn:
            for campaign, step_id in conn.execute(
                select(_E.c.campaign, _D.c.step_id)
                .join(_E, _E.c.id == _D.c.enrollment_id)
                .where(_D.c.status == "scheduled")
                .distinct()
            ):
                found.setdefault(campaign, set()).add(step_id)
        return found

    def queue_depth(self) -> dict[str, int]:
        """How many deliveries are in each status (every status present, zeros included)."""
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(_D.c.status, func.count()).group_by(_D.c.status)).all()
        depth = dict.fromkeys(DELIVERY_STATUSES, 0)
        depth.update({status: count for status, count in rows})
        return depth

    def link_positions(self, campaign: str, step_id: str, urls: Sequence[str]) -> list[int]:
        """Stable positions of a step's tracked URLs (see :func:`._tracking.link_positions`)."""
        return link_positions(self.engine, campaign, step_id, urls)

    def judge_experiment(
        self,
        campaign: str,
        step_id: str,
        subjects: Sequence[str],
        *,
        decide: Callable[[list[VariantTally]], Decision | None],
        now: datetime,
        sent_before: datetime | None = None,
    ) -> StoredWinner | None:
        """An A/B step's decision, stored or made now (:func:`._experiments.judge_experiment`)."""
        return judge_experiment(
            self.engine,
            campaign,
            step_id,
            subjects,
            decide=decide,
            now=now,
            sent_before=sent_before,
        )

    def schedule_version(self) -> int:
        """Changes whenever ``dripline apply`` records a campaign revision (one tiny query)."""
        with read_transaction(self.engine) as conn:
            return conn.scalar(select(func.max(_R.c.id))) or 0

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]:
        """Claim up to ``limit`` due deliveries for this worker, oldest first.

        In the same transaction: dead workers' claims are handed back (:mod:`._leases`);
        deliveries of unsubscribed, bounced or suppressed subscribers are cancelled instead
        of claimed; of several overdue steps of one subscriber only the earliest is claimed
        and the later steps are re-timed onto later local days; a step whose earlier
        step is still unfinished waits for it.
        """
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)  # naive means UTC throughout the store
        now_db = to_db_time(now)
        wall = self.clock()
        before = (self.worker_id, self._renewed_at)
        for retry in (True, False):
            try:
                with self._lease_lock:
                    claimed, keys = self._claim(now, now_db, wall, limit)
                break
            except BaseException as err:
                # Rolled back: a registration or renewal in it never happened.
                self.worker_id, self._renewed_at = before
                # The server ended the session (this process was stopped mid-claim past
                # the stall limit, or PostgreSQL restarted): once more on a new one.
                if not (retry and isinstance(err, StoreError) and err.connection_lost):
                    raise
        if not claimed:
            return []
        return [
            ClaimedDelivery(
                delivery_id=d_id,
                enrollment_id=enrollment_id,
                campaign=campaign,
                step=step,
                due_at=due_at.replace(tzinfo=UTC),
                attempt=attempts + 1,
                email=email,
                name=name,
                first_name=first_name,
                timezone=timezone,
                attributes=attributes or {},
                first_attempt_at=from_db_time(first_attempt_at) or now,
                public_key=keys[subscriber_id],
                step_id=step_id,
                subject_key=recorded_key,
            )
            for (
                d_id,
                enrollment_id,
                step,
                due_at,
                attempts,
                campaign,
                _,
                _,
                email,
                name,
                first_name,
                timezone,
                attributes,
                first_attempt_at,
                subscriber_id,
                _,
                _,
                step_id,
                recorded_key,
            ) in claimed
        ]

    def _claim(
        self, now: datetime, now_db: Any, wall: datetime, limit: int
    ) -> tuple[list[Any], dict[int, str]]:
        """The claim's transaction (see :meth:`claim_due`): the rows, subscribers' keys."""
        with write_transaction(self.engine) as conn:
            worker_id = self._hold_lease(conn, wall)
            expired = expire_dead_workers(conn, wall, worker_id)
            self.lease_expiries += expired.workers  # for metrics (dripline run --metrics-port)
            writer = BulkWriter(conn)
            # Rows cancelled or held back leave the claim short: read again (a few times)
            # rather than report "nothing due" while due rows remain behind them.
            for _ in range(_READS_PER_CLAIM):
                rows = conn.execute(self._candidates, {"now": now_db, "limit": limit}).all()
                claimed = self._claimable(conn, writer, rows, now)
                if claimed or len(rows) < limit:
                    break
            if not claimed:
                return [], {}
            retime_later_steps(writer, claimed, now, self.timetable_for)
            keys = _ensure_public_keys(conn, claimed)
            writer.execute_in(
                "UPDATE deliveries SET status = 'claimed', worker_id = ? WHERE id IN {in}",
                [r.id for r in claimed],
                worker_id,
            )
        return claimed, keys

    @staticmethod
    def _claimable(
        conn: Connection, writer: BulkWriter, rows: list[Any], now: datetime
    ) -> list[Any]:
        """The rows to claim: inactive or suppressed subscribers' cancelled, one step per
        enrollment, none ahead of an unfinished earlier step."""
        cancel: list[int] = []
        first_of: dict[int, Any] = {}
        for row in rows:
            if (
                row.subscriber_status != "active"
                or row.enrollment_status != "active"
                or row.suppression_id is not None
            ):
                cancel.append(row.id)
            elif row.enrollment_id not in first_of or row.step < first_of[row.enrollment_id].step:
                first_of[row.enrollment_id] = row
        if cancel:
            conn.execute(
                update(_D)
                .where(_D.c.id.in_(cancel), _D.c.status == "scheduled")
                .values(status="cancelled", last_error="subscriber is no longer active")
            )
        return hold_back_out_of_order(writer, list(first_of.values()), now)

    # -- outcomes -----------------------------------------------------------------

    def settle(
        self,
        outcomes: Sequence[Outcome],
        *,
        attempt: Sequence[int] = (),
        now: datetime,
        variants: Mapping[int, AttemptVariant] | None = None,
    ) -> SettleResult:
        """Record ``outcomes`` and move ``attempt`` to ``sending``, in one transaction.

        ``variants``: of the ``attempt`` ids, the A/B subject each carries, recorded with
        the move (so an ``ambiguous`` row says which subject may have arrived).

        Send only the ids in the result's ``attempting``: the others are no longer this
        worker's (its lease was taken over, the subscriber bounced meanwhile). ``now`` is
        the pass's time (it starts a first attempt's retry deadline). Raises StoreError.
        """
        if self.worker_id is None:
            raise DeliveryStateError("nothing was claimed by this worker")
        wall = self.clock()
        pass_time = now if now.tzinfo else now.replace(tzinfo=UTC)
        result = settle(
            self._writer,
            self.worker_id,
            outcomes,
            attempt,
            attempt_at=wall,
            first_attempt_at=pass_time,
            variants=variants or {},
            # A skipped step takes no slot: the steps after it come back to their spacing.
            after_skips=lambda cursor, sql, ids: free_skipped_slots(
                cursor, sql, ids, pass_time, self.timetable_for
            ),
        )
        if self._renewal_due(wall):  # a long pass keeps its lease without a heartbeat thread
            self.heartbeat()
        return result

    def _finish(self, outcome: Outcome) -> None:
        """One outcome on its own (tests and tools); raises unless this worker held the row."""
        if self.worker_id is None or self.settle([outcome], now=utc_now()).recorded != 1:
            with write_transaction(self.engine) as conn:
                status = conn.scalar(select(_D.c.status).where(_D.c.id == outcome.delivery_id))
            raise DeliveryStateError(
                f"delivery {outcome.delivery_id} is not being sent (status: {status or 'missing'})"
            )

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
    ) -> None:
        """Record an accepted message (``last_step=False`` skips the completion check),
        with the ledger of what went out: ``subject`` as sent, ``body_digest`` (SHA-256 hex
        of the rendered body) and ``campaign_commit`` (the project's git commit, ``-dirty``
        when the files differ from it)."""
        self._finish(
            Outcome(
                delivery_id,
                "sent",
                message_id=message_id,
                sent_at=sent_at,
                reply=reply,
                last_step=last_step,
                subject=subject,
                body_digest=body_digest,
                campaign_commit=campaign_commit,
            )
        )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        self._finish(Outcome(delivery_id, "failed", error=error))

    def mark_deferred(self, delivery_id: int, next_at: datetime, error: str) -> None:
        """A temporary failure: back to ``scheduled`` at ``next_at`` (attempts are kept)."""
        self._finish(Outcome(delivery_id, "deferred", error=error, next_at=next_at))

    def mark_ambiguous(self, delivery_id: int, error: str) -> None:
        self._finish(Outcome(delivery_id, "ambiguous", error=error))

    def mark_bounced(self, delivery_id: int, error: str) -> None:
        """A dead mailbox: failed, the subscriber ``bounced``, their pending rows cancelled."""
        self._finish(Outcome(delivery_id, "bounced", error=error))

    def release(self, delivery_ids: Sequence[int]) -> None:
        """Give claimed deliveries back unsent: ``scheduled`` again as they were."""
        if delivery_ids and self.worker_id is not None:
            self.settle([Outcome(i, "released") for i in delivery_ids], now=utc_now())

    def recover(self, *, end_lease: bool = False) -> None:
        """Hand back what this worker holds, when nothing of it is in flight any more.

        ``claimed`` rows go back to ``scheduled``; a row still ``sending`` was given to the
        sender with no outcome recorded (a failed write): ``ambiguous``, as after a crash.
        ``end_lease`` also deletes this worker's row.
        """
        if self.worker_id is None:
            return
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(_D)
                .where(_D.c.status == "claimed", _D.c.worker_id == self.worker_id)
                .values(status="scheduled", worker_id=None)
            )
            conn.execute(
                update(_D)
                .where(_D.c.status == "sending", _D.c.worker_id == self.worker_id)
                .values(status="ambiguous", last_error="no outcome was recorded")
            )
            if end_lease:
                conn.execute(delete(_W).where(_W.c.id == self.worker_id))
        if end_lease:
            self.worker_id = None

    def close(self) -> None:
        """Hand back anything still claimed, end the lease and give back the connection."""
        try:
            self.recover(end_lease=True)
        finally:
            self._writer.close_connection()
