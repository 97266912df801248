"""Operator commands on the queue: expire dead workers' leases, re-send ambiguous deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from ._engine import write_transaction
from ._leases import ExpiredLeases, expire_dead_workers, utc_now
from ._models import Delivery, Enrollment
from ._values import to_db_time

__all__ = ["expire_leases", "requeue_ambiguous"]

_D = Delivery.__table__
_E = Enrollment.__table__


def expire_leases(engine: Engine, now: datetime | None = None) -> ExpiredLeases:
    """Hand back what dead workers held (see :mod:`dripline.store._leases`); one transaction.

    ``now`` is the wall clock (aware UTC; default: the current time). Raises StoreError.
    """
    with write_transaction(engine) as conn:
        return expire_dead_workers(conn, now or utc_now())


def requeue_ambiguous(
    engine: Engine,
    campaign: str | None = None,
    *,
    older_than: timedelta | None = None,
    now: datetime | None = None,
) -> int:
    """Schedule ``ambiguous`` deliveries to be sent again now; returns how many.

    At-least-once: the relay may already have accepted some of them, and those
    subscribers then get that step twice. ``campaign`` limits it to one campaign;
    ``older_than`` to deliveries whose attempt began at least that long before ``now``
    (wall clock, aware UTC), so a worker still finishing one is left alone.
    """
    now = now or utc_now()
    with write_transaction(engine) as conn:
        expire_dead_workers(conn, now)
        query = select(_D.c.id).where(_D.c.status == "ambiguous")
        if campaign is not None:
            query = query.join(_E, _E.c.id == _D.c.enrollment_id).where(_E.c.campaign == campaign)
        if older_than is not None:
            cutoff = to_db_time(now - older_than)
            query = query.where((_D.c.attempted_at.is_(None)) | (_D.c.attempted_at <= cutoff))
        ids = list(conn.scalars(query))
        if not ids:
            return 0
        return conn.execute(
            update(_D)
            .where(_D.c.id.in_(ids), _D.c.status == "ambiguous")
            .values(status="scheduled", due_at=to_db_time(now), worker_id=None)
        ).rowcount
