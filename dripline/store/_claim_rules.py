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
    """Move later steps that would land on the send's local day (or before) to later days."""
    by_enrollment = {r.enrollment_id: r for r in claimed}
    # Only a step due before the end of today (local; at most 25 hours ahead anywhere,
    # DST included) can break the spacing, so first look just at those rows: in normal
    # running that is the claimed rows themselves. The status is filtered in Python:
    # given "status = ..." here SQLite leaves the (enrollment_id, step) index for the
    # (status, due_at) one and walks every scheduled row.
    conn = writer.conn
    horizon = writer.time(to_db_time(now + timedelta(hours=25)))
    near = writer.select_in(
        "SELECT enrollment_id, step, status FROM deliveries "
        "WHERE due_at < ? AND enrollment_id IN {in}",
        list(by_enrollment),
        horizon,
    )
    suspects = {
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
        table = timetable_for(sent.campaign)
        zone = table.zone_for(sent.timezone)
        send_day = now.astimezone(zone).date()
        next_day = (from_db_time(steps[0].due_at) or now).astimezone(zone).date()
        if next_day > send_day:
            continue  # the spacing is intact: nothing to move
        # The campaign files give the spacing; rows are matched to them by identity (a
        # step no file has any more is held, so it is not moved).
        sent_number = table.number_of(sent.step_id)
        if sent_number is None:
            continue
        country = country_of(sent.attributes)
        new_times = table.retime_remaining(sent_number, now, sent.timezone, country)
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
