"""A skipped step takes no slot: the steps after it are re-timed as if it were not there.

When a subscriber's step is ``skipped`` (its ``when`` was false), the claim that took it
has already moved the later steps as if it went out (:func:`._claim_rules.
retime_later_steps`, the spacing kept after an outage). Nothing went out, so those
steps are put back where the sequence without the skipped step(s) puts them: spaced
from the last step actually sent (or from the enrollment's own timetable when none
was), and never before the pass that skipped; a step sent late (an outage) keeps the
campaign's spacing from the day it went out (:meth:`..timetable.Timetable.respace`, the
rule the claim applies). Steps only ever move earlier here, in the same transaction
that records the skip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..timetable import Timetable
from ._values import country_of, from_db_time

__all__ = ["free_skipped_slots"]

_ROWS = (
    "SELECT d.id, d.enrollment_id, d.step_id, d.status, d.due_at, d.sent_at, "
    "e.campaign, e.enrolled_at, s.timezone, s.attributes, d.first_attempt_at "
    "FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id "
    "JOIN subscribers s ON s.id = e.subscriber_id WHERE d.enrollment_id {among}"
)


def free_skipped_slots(
    cursor: Any,
    sql: Any,
    skipped_ids: list[int],
    now: datetime,
    timetable_for: Callable[[str], Timetable],
) -> int:
    """Move the scheduled steps after the ``skipped_ids`` deliveries back to their
    spacing without the skipped steps (aware UTC ``now``: the pass's time, the
    earliest they may go). ``sql`` is :class:`._outcomes._Sql`. The rows moved (a count).
    """
    if not skipped_ids:
        return 0
    among, values = sql.any_of(skipped_ids)
    cursor.execute(sql.q(f"SELECT DISTINCT enrollment_id FROM deliveries WHERE id {among}"), values)
    enrollments = [row[0] for row in cursor.fetchall()]
    among, values = sql.any_of(enrollments)
    cursor.execute(sql.q(_ROWS.format(among=among)), values)
    by_enrollment: dict[int, list[tuple[Any, ...]]] = {}
    for row in cursor.fetchall():
        by_enrollment.setdefault(row[1], []).append(row)
    moves: list[tuple[Any, int]] = []
    for rows in by_enrollment.values():
        moves += _moves(rows, now, timetable_for)
    if moves:
        cursor.executemany(
            sql.q("UPDATE deliveries SET due_at = ? WHERE id = ? AND status = 'scheduled'"),
            [(sql.time(due), row_id) for due, row_id in moves],
        )
    return len(moves)


def _moves(
    rows: list[tuple[Any, ...]], now: datetime, timetable_for: Callable[[str], Timetable]
) -> list[tuple[datetime, int]]:
    """(new due, row id) for one enrollment's scheduled steps that the skips let go earlier."""
    _, _, _, _, _, _, campaign, enrolled_at, timezone, attributes, _ = rows[0]
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    country = country_of(attributes)
    table = timetable_for(campaign)
    numbered = [(table.number_of(r[2]), r) for r in rows]
    if any(number is None for number, _ in numbered):
        return []  # a step no file has any more: held, its neighbours are left alone
    skipped = frozenset(n for n, r in numbered if r[3] == "skipped")
    pending = sorted((n, r) for n, r in numbered if r[3] == "scheduled")
    last_skipped = max(skipped, default=0)
    pending = [(n, r) for n, r in pending if n > last_skipped]
    if not pending:
        return []
    plan = table.due_times(from_db_time(enrolled_at) or now, timezone, country)
    times = {rule.number: due for rule, due in zip(table.steps, plan, strict=True)}
    sent = [(n, r) for n, r in numbered if r[3] == "sent" and n < pending[0][0] and r[5]]
    if sent:
        anchor, anchor_row = max(sent, key=lambda item: item[0])
        sent_at = from_db_time(anchor_row[5]) or now
        times |= table.respace(
            times, anchor, sent_at, _planned(anchor_row), timezone, country, without=skipped
        )
    first = pending[0][0]
    if times[first] < now:
        # Overdue: the first step goes now, the rest keep their spacing from it.
        planned = times[first]
        times[first] = now
        times |= table.respace(times, first, now, planned, timezone, country, without=skipped)
    moves: list[tuple[datetime, int]] = []
    for number, row in pending:
        current = from_db_time(row[4])
        new = times.get(number)
        if new is not None and current is not None and new < current:
            moves.append((new, row[0]))
    return moves


def _planned(row: tuple[Any, ...]) -> datetime | None:
    """When a sent row was meant to go: its first attempt or its due time, the earlier."""
    found = [t for t in (from_db_time(row[10]), from_db_time(row[4])) if t is not None]
    return min(found, default=None)
