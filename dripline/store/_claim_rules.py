"""Two rules a claim applies: steps in order, and the spacing kept after an outage.

- :func:`hold_back_out_of_order`: a step is never claimed while an earlier step of the
  same enrollment is still ``scheduled`` (a retry waiting for its backoff, say),
  ``claimed`` or ``sending``; it is moved to just after that step instead, and
  re-timed when that step goes out.
- :func:`retime_later_steps`: when a step goes out late, later steps that would now
  land on the same local day (or earlier) move to later days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from ..errors import DriplineError
from ..timetable import Timetable
from ._bulk import BulkWriter
from ._models import Delivery
from ._values import country_of, from_db_time, to_db_time

__all__ = ["hold_back_out_of_order", "retime_later_steps"]

_D = Delivery.__table__
_IN_FLIGHT = frozenset({"scheduled", "claimed", "sending"})
# How far past the blocking step a held-back step moves (then re-timed when that one goes).
_HOLD_BACK = timedelta(minutes=1)


def hold_back_out_of_order(writer: BulkWriter, claimed: list[Any], now: datetime) -> list[Any]:
    """``claimed`` without the rows an earlier unfinished step must go before; those move."""
    later = {r.enrollment_id: r for r in claimed if r.step > 1}
    if not later:
        return claimed
    blocked: dict[int, datetime] = {}
    for enrollment_id, step, status, due_at in writer.conn.execute(
        select(_D.c.enrollment_id, _D.c.step, _D.c.status, _D.c.due_at).where(
            _D.c.enrollment_id.in_(list(later))
        )
    ):
        if status in _IN_FLIGHT and step < later[enrollment_id].step:
            due = from_db_time(due_at) or now
            blocked[enrollment_id] = max(blocked.get(enrollment_id, due), due)
    if not blocked:
        return claimed
    writer.conn.execute(
        update(_D)
        .where(_D.c.id == bindparam("row_id"), _D.c.status == "scheduled")
        .values(due_at=bindparam("new_due"))
        .execution_options(synchronize_session=False),
        [
            {
                "row_id": later[e].id,
                "new_due": to_db_time(max(due, now) + _HOLD_BACK),
            }
            for e, due in blocked.items()
        ],
    )
    return [r for r in claimed if r.enrollment_id not in blocked]


def retime_later_steps(
    writer: BulkWriter,
    claimed: list[Any],
    now: datetime,
    timetable_for: Callable[[str], Timetable],
) -> None:
    """Keep the campaign's spacing after each claimed send (:meth:`Timetable.respace`):
    later steps that would land on the send's local day (or before) move to later days,
    and after a late send (on a later local day than planned) no later step comes sooner
    after it than the campaign's spacing."""
    by_enrollment = {r.enrollment_id: r for r in claimed}
    late = {r.enrollment_id for r in claimed if _late(r, now, timetable_for)}
    # Only a step due before the end of today (local; at most 25 hours ahead anywhere,
    # DST included) can collide, so besides the late sends look just at those rows: in
    # normal running that is the claimed rows themselves. The status is filtered in
    # Python: given "status = ..." here SQLite leaves the (enrollment_id, step) index for
    # the (status, due_at) one and walks every scheduled row.
    conn = writer.conn
    horizon = writer.time(to_db_time(now + timedelta(hours=25)))
    near = writer.select_in(
        "SELECT enrollment_id, step, status FROM deliveries "
        "WHERE due_at < ? AND enrollment_id IN {in}",
        list(by_enrollment),
        horizon,
    )
    suspects = late | {
        enrollment_id
        for enrollment_id, step, status in near
        if status == "scheduled" and step > by_enrollment[enrollment_id].step
    }
    if not suspects:
        return
    pending: dict[int, list[Any]] = {}
    for row in conn.execute(
        select(_D.c.id, _D.c.enrollment_id, _D.c.step, _D.c.due_at, _D.c.status, _D.c.step_id)
        .where(_D.c.enrollment_id.in_(list(suspects)))
        .order_by(_D.c.enrollment_id, _D.c.step)
    ):
        if row.status == "scheduled" and row.step > by_enrollment[row.enrollment_id].step:
            pending.setdefault(row.enrollment_id, []).append(row)
    moves: list[dict[str, Any]] = []
    for enrollment_id, steps in pending.items():
        sent = by_enrollment[enrollment_id]
        try:
            table = timetable_for(sent.campaign)
        except DriplineError:  # a broken campaign file: its send defers and says why
            continue
        # The campaign files give the spacing; rows are matched to them by identity (a
        # step no file has any more is held, so it is not moved).
        sent_number = table.number_of(sent.step_id)
        if sent_number is None:
            continue
        current = {
            number: from_db_time(s.due_at) or now
            for s in steps
            if (number := table.number_of(s.step_id)) is not None
        }
        if not current:
            continue
        new_times = table.respace(
            current,
            sent_number,
            now,
            _planned(sent),
            sent.timezone,
            country_of(sent.attributes),
        )
        for s in steps:
            number = table.number_of(s.step_id)
            if number in new_times:
                moves.append({"row_id": s.id, "new_due": to_db_time(new_times[number])})
    if moves:
        conn.execute(
            update(_D)
            .where(_D.c.id == bindparam("row_id"))
            .values(due_at=bindparam("new_due"))
            .execution_options(synchronize_session=False),
            moves,
        )


def _planned(row: Any) -> datetime | None:
    """When a claimed row was meant to go: its first attempt or its due time, the earlier."""
    found = [t for t in (from_db_time(row.first_attempt_at), from_db_time(row.due_at)) if t]
    return min(found, default=None)


def _late(row: Any, now: datetime, timetable_for: Callable[[str], Timetable]) -> bool:
    """Whether ``row`` goes out on a later local day than it was planned for."""
    planned = _planned(row)
    if planned is None:
        return False
    try:
        zone = timetable_for(row.campaign).zone_for(row.timezone)
    except DriplineError:  # a broken campaign file or zone: the send defers, and says why
        return False
    return now.astimezone(zone).date() > planned.astimezone(zone).date()
