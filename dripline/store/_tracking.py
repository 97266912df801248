"""Click and open tracking in the store: stable link positions, and recording hits.

Dispatch asks :func:`link_positions` for a step's tracked URLs before rendering; the
positions only grow, so a token in an old email still names the URL it was sent with.
``dripline serve`` calls :func:`record_click` with what a genuine token names and gets
back the URL to redirect to, read from this table and never from the request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, select
from sqlalchemy.exc import IntegrityError

from ..useragents import is_machine
from ._engine import read_transaction, write_transaction
from ._models import Delivery, Enrollment
from ._results_models import Click, Open, TrackedLink
from ._values import from_db_time, to_db_time

__all__ = ["TrackedHit", "link_positions", "record_click", "record_open"]

_D = Delivery.__table__
_E = Enrollment.__table__
_L = TrackedLink.__table__
_C = Click.__table__
_O = Open.__table__


@dataclass(frozen=True)
class TrackedHit:
    """A recorded click (``url`` to redirect to) or open (``url`` empty)."""

    url: str
    machine: bool
    user_agent_class: str


def link_positions(engine: Engine, campaign: str, step_id: str, urls: Sequence[str]) -> list[int]:
    """The stable position of each of ``urls`` in the step, adding those not seen before.

    Two workers adding the same step's links at once: the loser of the unique index
    reads the winner's positions and tries again.
    """
    for _attempt in range(5):
        with read_transaction(engine) as conn:
            known = {
                row.url: row.position
                for row in conn.execute(
                    select(_L.c.url, _L.c.position).where(
                        _L.c.campaign == campaign, _L.c.step_id == step_id
                    )
                )
            }
        missing = [url for url in dict.fromkeys(urls) if url not in known]
        if not missing:
            return [known[url] for url in urls]
        try:
            with write_transaction(engine) as conn:
                top = conn.scalar(
                    select(func.max(_L.c.position)).where(
                        _L.c.campaign == campaign, _L.c.step_id == step_id
                    )
                )
                start = -1 if top is None else top
                rows = [
                    {"campaign": campaign, "step_id": step_id, "position": start + 1 + i, "url": u}
                    for i, u in enumerate(missing)
                ]
                conn.execute(insert(_L), rows)
        except IntegrityError:
            continue
    raise RuntimeError(f"could not record the tracked links of {campaign}/{step_id}")


def _delivery(conn: Connection, delivery_id: int) -> Row[Any] | None:
    """The delivery's id, step identity, send and hand-off times and campaign, or None when
    it does not exist or its message never went to the sender (a token for it was never
    in an email: a click on it is forged or from a copy of another database)."""
    row = conn.execute(
        select(
            _D.c.id,
            _D.c.step_id,
            _D.c.sent_at,
            _D.c.attempted_at,
            _D.c.accepted_at,
            _D.c.status,
            _E.c.campaign,
        )
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(_D.c.id == delivery_id)
    ).first()
    if row is None or (row.status not in _HANDED_OVER and row.attempted_at is None):
        return None
    return row


# The message went to the sender (or is going): its links may be in someone's inbox. Any
# other row with an attempt behind it (deferred, requeued) may have gone out too.
_HANDED_OVER = ("sent", "sending", "ambiguous")


def record_click(
    engine: Engine,
    delivery_id: int,
    position: int,
    *,
    names_campaign: Callable[[str], bool],
    user_agent_class: str,
    now: datetime,
    record: bool = True,
) -> TrackedHit | None:
    """Record a click on link ``position`` of ``delivery_id``; the URL to send the visitor to.

    None (nothing recorded) when the delivery or link does not exist or the token's
    campaign (``names_campaign``) is not the delivery's. ``now`` is aware UTC. With
    ``record`` False only the URL is looked up (a ``HEAD`` request: a link checker).
    """
    with write_transaction(engine) as conn:
        delivery = _delivery(conn, delivery_id)
        if delivery is None or not names_campaign(delivery.campaign):
            return None
        url = conn.scalar(
            select(_L.c.url).where(
                _L.c.campaign == delivery.campaign,
                _L.c.step_id == delivery.step_id,
                _L.c.position == position,
            )
        )
        if url is None:
            return None
        machine = _machine(user_agent_class, delivery, now)
        if not record:
            return TrackedHit(url, machine, user_agent_class)
        conn.execute(
            insert(_C).values(
                delivery_id=delivery_id,
                position=position,
                clicked_at=to_db_time(now),
                user_agent_class=user_agent_class,
                machine=machine,
            )
        )
    return TrackedHit(url, machine, user_agent_class)


def record_open(
    engine: Engine,
    delivery_id: int,
    *,
    names_campaign: Callable[[str], bool],
    user_agent_class: str,
    now: datetime,
    record: bool = True,
) -> TrackedHit | None:
    """Record an open of ``delivery_id`` (the image was loaded); None when it is unknown.
    With ``record`` False nothing is stored (a ``HEAD`` request)."""
    with write_transaction(engine) as conn:
        delivery = _delivery(conn, delivery_id)
        if delivery is None or not names_campaign(delivery.campaign):
            return None
        machine = _machine(user_agent_class, delivery, now)
        if not record:
            return TrackedHit("", machine, user_agent_class)
        conn.execute(
            insert(_O).values(
                delivery_id=delivery_id,
                opened_at=to_db_time(now),
                user_agent_class=user_agent_class,
                machine=machine,
            )
        )
    return TrackedHit("", machine, user_agent_class)


def _machine(user_agent_class: str, delivery: Row[Any], now: datetime) -> bool:
    # ``accepted_at`` is the wall-clock moment the sender accepted this very message: a
    # gateway scanning it on arrival clicks seconds after that, however long the pass
    # ran. Rows sent before it was recorded fall back to the chunk's hand-off time
    # (``attempted_at``) and the pass's clock (``sent_at``), a click near either counting.
    accepted = from_db_time(delivery.accepted_at)
    if accepted is not None:
        times = [accepted]
    else:
        times = [from_db_time(delivery.sent_at), from_db_time(delivery.attempted_at)]
    seconds = [(now - t).total_seconds() for t in times if t is not None]
    if not seconds:
        return is_machine(user_agent_class, None)
    return is_machine(user_agent_class, min(seconds, key=abs))
