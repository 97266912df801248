"""Recording a group of outcomes, and marking the next group as being sent, in one transaction.

The dispatcher sends a claimed batch a chunk at a time. Between two chunks it calls
:func:`settle` once: the outcomes of the chunk just sent are written, and the next
chunk's rows move from ``claimed`` to ``sending`` (their data goes to the sender
right after the commit), with the A/B subject each carries (variant number, key of its
text, the subject as rendered), so an ``ambiguous`` row says which subject may have
arrived. So after a crash at most one chunk per worker is in ``sending`` (it becomes
``ambiguous``) and nothing else is in doubt.

Statements run on the queue's kept driver connection (:class:`FastWriter`): one
``executemany`` per kind of outcome (psycopg pipelines it), and on PostgreSQL the
sent rows, by far the most, in one ``UPDATE ... FROM (VALUES ...)``. Each row is
guarded by its state and owner: an outcome only lands on a row this worker still
holds (``claimed``, ``sending``, or ``ambiguous`` after its lease was taken over).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ._fastwrite import FastWriter
from ._values import to_db_time

__all__ = ["AttemptVariant", "Outcome", "OutcomeKind", "SettleResult", "settle"]

OutcomeKind = Literal["sent", "failed", "deferred", "ambiguous", "bounced", "released", "skipped"]

_HELD = "status IN ('claimed', 'sending', 'ambiguous') AND worker_id = ?"
_PENDING = "('scheduled', 'claimed', 'sending')"


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery.

    ``sent`` (``message_id``, ``sent_at``, ``accepted_at``, ``reply``; ``last_step``
    checks whether the enrollment is complete), ``failed`` / ``ambiguous`` / ``bounced``
    (``error``),
    ``deferred`` (back to ``scheduled`` at ``next_at``, UTC), ``released`` (never tried:
    ``scheduled`` again as it was, the attempt refunded), ``skipped`` (the step's ``when``
    is false for this subscriber: final, never sent; ``last_step`` as for ``sent``).
    """

    delivery_id: int
    kind: OutcomeKind
    error: str | None = None
    message_id: str | None = None
    sent_at: datetime | None = None
    # Wall clock (aware UTC) when the sender accepted this message; machine clicks are
    # measured from it (sent_at is the pass's clock, the same for a whole pass).
    accepted_at: datetime | None = None
    reply: str | None = None
    next_at: datetime | None = None
    last_step: bool = True
    # The ledger of a sent message: its subject as sent, a digest of the rendered body
    # (SHA-256 hex) and the project's git commit (see dripline.ledger).
    subject: str | None = None
    body_digest: str | None = None
    campaign_commit: str | None = None
    subject_variant: int | None = None  # the A/B subject variant sent (1-based), if any
    # A deferral before anything was sent (the campaign's files, a `when` failing for this
    # subscriber): counted as an attempt all the same, so the back-off grows.
    counts_attempt: bool = False


@dataclass(frozen=True)
class AttemptVariant:
    """The A/B subject a delivery going to ``sending`` carries."""

    variant: int  # 1-based, in the step's subjects as they are now
    key: str  # subject_key of that subject as written (dripline.store.subject_key)
    subject: str  # the subject as rendered for this subscriber (the ledger's)


@dataclass(frozen=True)
class SettleResult:
    """``attempting``: the ids now ``sending`` for this worker (send only those);
    ``unrecorded``: outcomes that found their row no longer held by this worker."""

    attempting: frozenset[int]
    unrecorded: tuple[int, ...] = ()
    recorded: int = 0  # outcome rows changed by this transaction


class _Sql:
    """Placeholders and time values in the driver's own form."""

    def __init__(self, writer: FastWriter) -> None:
        self.sqlite = writer.sqlite
        self.mark = "?" if self.sqlite else "%s"

    def q(self, sql: str) -> str:
        return sql if self.sqlite else sql.replace("?", "%s")

    def any_of(self, ids: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
        """``id IN (...)`` for ``ids``: ``= ANY(%s)`` with one array on PostgreSQL, so the
        statement text is the same for every group (psycopg then converts it once)."""
        if self.sqlite:
            return f"IN ({', '.join('?' * len(ids))})", tuple(ids)
        return "= ANY(?)", (list(ids),)

    def time(self, moment: datetime | None) -> Any:
        value = to_db_time(moment) if moment is not None else None
        if value is None or not self.sqlite:
            return value
        text = value.isoformat(" ")  # what SQLAlchemy's SQLite DateTime writes and reads
        return text if value.microsecond else text + ".000000"


def settle(
    writer: FastWriter,
    worker_id: int,
    outcomes: Sequence[Outcome],
    attempt: Sequence[int],
    *,
    attempt_at: datetime,
    first_attempt_at: datetime,
    after_skips: Callable[[Any, _Sql, list[int]], Any] | None = None,
    variants: Mapping[int, AttemptVariant] | None = None,
) -> SettleResult:
    """Record ``outcomes`` and move ``attempt`` from ``claimed`` to ``sending``, one transaction.

    ``attempt_at`` (wall clock) is stored as ``attempted_at``; ``first_attempt_at`` (the
    pass's time) starts the retry deadline of a first attempt. ``after_skips(cursor,
    sql, ids)`` runs in the same transaction with the recorded ``skipped`` ids (the
    later steps re-timed). ``variants``: the A/B subject of some ``attempt`` ids,
    recorded with their move to ``sending``. Raises StoreError.
    """
    sql = _Sql(writer)
    by_kind: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_kind.setdefault(outcome.kind, []).append(outcome)

    def body(cursor: Any) -> SettleResult:
        missed: list[int] = []
        changed = [0]
        missed += _sent(cursor, sql, worker_id, by_kind.get("sent", []), changed)
        deferred = by_kind.pop("deferred", [])
        by_kind["deferred"] = [o for o in deferred if not o.counts_attempt]
        by_kind["deferred unsent"] = [o for o in deferred if o.counts_attempt]
        for kind in ("failed", "deferred", "deferred unsent", "ambiguous", "released", "skipped"):
            missed += _simple(cursor, sql, worker_id, kind, by_kind.get(kind, []), changed)
        skipped = by_kind.get("skipped", [])
        _complete(cursor, sql, {o.delivery_id for o in skipped if o.last_step} - set(missed))
        if after_skips is not None and skipped:
            recorded = [o.delivery_id for o in skipped if o.delivery_id not in missed]
            after_skips(cursor, sql, recorded)
        for outcome in by_kind.get("bounced", []):
            missed += _bounced(cursor, sql, worker_id, outcome, changed)
        attempting = _attempt(cursor, sql, worker_id, attempt, attempt_at, first_attempt_at)
        _record_variants(cursor, sql, worker_id, attempting, variants or {})
        return SettleResult(attempting, tuple(missed), changed[0])

    return writer.transaction(body)


def _rows_changed(cursor: Any, sql: str, rows: list[tuple[Any, ...]]) -> int:
    if len(rows) == 1:
        cursor.execute(sql, rows[0])
    else:
        cursor.executemany(sql, rows)
    return cursor.rowcount if cursor.rowcount is not None else -1


def _unheld(cursor: Any, sql: _Sql, worker_id: int, ids: list[int], target: str) -> list[int]:
    """Which of ``ids`` did not reach ``target`` (asked only when a count came up short)."""
    among, values = sql.any_of(ids)
    cursor.execute(
        sql.q(f"SELECT id FROM deliveries WHERE id {among} AND status = ?"),
        (*values, target),
    )
    done = {row[0] for row in cursor.fetchall()}
    return [i for i in ids if i not in done]


def _sent(
    cursor: Any, sql: _Sql, worker_id: int, sent: list[Outcome], changed_total: list[int]
) -> list[int]:
    if not sent:
        return []
    ids = [o.delivery_id for o in sent]
    if sql.sqlite or len(sent) == 1:
        rows = [
            (
                o.message_id,
                sql.time(o.sent_at),
                o.reply,
                o.subject,
                o.body_digest,
                o.campaign_commit,
                o.subject_variant,
                sql.time(o.accepted_at),
                o.delivery_id,
                worker_id,
            )
            for o in sent
        ]
        changed = _rows_changed(
            cursor,
            sql.q(
                "UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, reply = ?, "
                "subject = ?, body_digest = ?, campaign_commit = ?, subject_variant = ?, "
                f"accepted_at = ?, last_error = NULL, worker_id = NULL WHERE id = ? AND {_HELD}"
            ),
            rows,
        )
    else:
        # One statement of constant text, whatever the group's size: one array per
        # column, unnested into rows (psycopg converts and plans the text once).
        columns: list[list[Any]] = [[] for _ in range(9)]
        for o in sent:
            row = (
                o.delivery_id,
                o.message_id,
                sql.time(o.sent_at),
                o.reply,
                o.subject,
                o.body_digest,
                o.campaign_commit,
                o.subject_variant,
                sql.time(o.accepted_at),
            )
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        cursor.execute(
            "UPDATE deliveries AS d SET status = 'sent', message_id = v.message_id, "
            "sent_at = v.sent_at, reply = v.reply, subject = v.subject, "
            "body_digest = v.body_digest, campaign_commit = v.campaign_commit, "
            "subject_variant = v.subject_variant, accepted_at = v.accepted_at, "
            "last_error = NULL, worker_id = NULL "
            "FROM unnest(%s::integer[], %s::text[], %s::timestamp[], %s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::integer[], %s::timestamp[]) "
            "AS v(id, message_id, sent_at, reply, subject, body_digest, campaign_commit, "
            "subject_variant, accepted_at) "
            "WHERE d.id = v.id AND d.status IN ('claimed', 'sending', 'ambiguous') "
            "AND d.worker_id = %s",
            (*columns, worker_id),
        )
        changed = cursor.rowcount
    changed_total[0] += changed
    missed = _unheld(cursor, sql, worker_id, ids, "sent") if changed != len(ids) else []
    _complete(cursor, sql, {o.delivery_id for o in sent if o.last_step} - set(missed))
    return missed


def _complete(cursor: Any, sql: _Sql, delivery_ids: set[int]) -> None:
    """Complete the enrollments of these (last-step) deliveries that have nothing pending."""
    if not delivery_ids:
        return
    among, values = sql.any_of(sorted(delivery_ids))
    cursor.execute(
        sql.q(
            "UPDATE enrollments SET status = 'completed' WHERE status = 'active' AND id IN "
            f"(SELECT enrollment_id FROM deliveries WHERE id {among}) AND NOT EXISTS "
            "(SELECT 1 FROM deliveries p WHERE p.enrollment_id = enrollments.id "
            f"AND p.status IN {_PENDING})"
        ),
        values,
    )


_SIMPLE = {
    "failed": ("status = 'failed', last_error = ?, worker_id = NULL", "failed"),
    "deferred": ("status = 'scheduled', due_at = ?, last_error = ?, worker_id = NULL", "scheduled"),
    "deferred unsent": (
        "status = 'scheduled', attempts = attempts + 1, due_at = ?, last_error = ?, "
        "worker_id = NULL",
        "scheduled",
    ),
    # The worker id stays: `dripline requeue` clears it.
    "ambiguous": ("status = 'ambiguous', last_error = ?", "ambiguous"),
    # Never tried: the attempt a 'sending' row was charged is given back.
    "released": (
        "attempts = attempts - CASE WHEN status = 'sending' THEN 1 ELSE 0 END, "
        "status = 'scheduled', worker_id = NULL",
        "scheduled",
    ),
    # The step's condition is false for this subscriber: final (see dripline.conditions).
    "skipped": ("status = 'skipped', last_error = NULL, worker_id = NULL", "skipped"),
}


def _simple(
    cursor: Any,
    sql: _Sql,
    worker_id: int,
    kind: str,
    outcomes: list[Outcome],
    changed_total: list[int],
) -> list[int]:
    if not outcomes:
        return []
    assignments, target = _SIMPLE[kind]
    rows: list[tuple[Any, ...]] = []
    for o in outcomes:
        values: tuple[Any, ...] = ()
        if kind in ("deferred", "deferred unsent"):
            values = (sql.time(o.next_at), o.error)
        elif kind in ("failed", "ambiguous"):
            values = (o.error,)
        rows.append((*values, o.delivery_id, worker_id))
    held = _HELD if kind != "released" else "status IN ('claimed', 'sending') AND worker_id = ?"
    changed = _rows_changed(
        cursor, sql.q(f"UPDATE deliveries SET {assignments} WHERE id = ? AND {held}"), rows
    )
    changed_total[0] += changed
    ids = [o.delivery_id for o in outcomes]
    return _unheld(cursor, sql, worker_id, ids, target) if changed != len(ids) else []


def _bounced(
    cursor: Any, sql: _Sql, worker_id: int, outcome: Outcome, changed_total: list[int]
) -> list[int]:
    """A dead mailbox: failed, the subscriber ``bounced``, their pending deliveries cancelled."""
    cursor.execute(
        sql.q(
            "UPDATE deliveries SET status = 'failed', last_error = ?, worker_id = NULL "
            f"WHERE id = ? AND {_HELD}"
        ),
        (outcome.error, outcome.delivery_id, worker_id),
    )
    if cursor.rowcount != 1:
        return [outcome.delivery_id]
    changed_total[0] += 1
    cursor.execute(
        sql.q(
            "SELECT e.subscriber_id FROM enrollments e JOIN deliveries d "
            "ON d.enrollment_id = e.id WHERE d.id = ?"
        ),
        (outcome.delivery_id,),
    )
    (subscriber_id,) = cursor.fetchone()
    cursor.execute(
        sql.q("UPDATE subscribers SET status = 'bounced' WHERE id = ?"), (subscriber_id,)
    )
    # A row claimed by another worker is cancelled too: its owner's move to 'sending' then
    # finds it gone and skips it.
    cursor.execute(
        sql.q(
            "UPDATE deliveries SET status = 'cancelled', last_error = 'address bounced', "
            "worker_id = NULL WHERE status IN ('scheduled', 'claimed') AND enrollment_id IN "
            "(SELECT id FROM enrollments WHERE subscriber_id = ?)"
        ),
        (subscriber_id,),
    )
    return []


def _attempt(
    cursor: Any,
    sql: _Sql,
    worker_id: int,
    ids: Sequence[int],
    attempt_at: datetime,
    first_attempt_at: datetime,
) -> frozenset[int]:
    if not ids:
        return frozenset()
    among, values = sql.any_of(ids)
    cursor.execute(
        sql.q(
            "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, "
            "first_attempt_at = COALESCE(first_attempt_at, ?), attempted_at = ? "
            f"WHERE id {among} AND status = 'claimed' AND worker_id = ?"
        ),
        (sql.time(first_attempt_at), sql.time(attempt_at), *values, worker_id),
    )
    if cursor.rowcount == len(ids):
        return frozenset(ids)
    # Some were taken back (a lease taken over, a bounce elsewhere) or, on a retried
    # transaction, are 'sending' already: send exactly those this worker holds in 'sending'.
    cursor.execute(
        sql.q(
            f"SELECT id FROM deliveries WHERE id {among} AND status = 'sending' AND worker_id = ?"
        ),
        (*values, worker_id),
    )
    return frozenset(row[0] for row in cursor.fetchall())


def _record_variants(
    cursor: Any,
    sql: _Sql,
    worker_id: int,
    attempting: frozenset[int],
    variants: Mapping[int, AttemptVariant],
) -> None:
    """The A/B subject of the rows just moved to ``sending`` (the ledger before the send)."""
    rows = [
        (v.variant, v.key, v.subject, delivery_id, worker_id)
        for delivery_id, v in sorted(variants.items())
        if delivery_id in attempting
    ]
    if rows:
        _rows_changed(
            cursor,
            sql.q(
                "UPDATE deliveries SET subject_variant = ?, subject_key = ?, subject = ? "
                "WHERE id = ? AND status = 'sending' AND worker_id = ?"
            ),
            rows,
        )
