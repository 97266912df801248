"""A/B subject tests in the store: each variant's counts, and the winner decided once.

A variant's counts are its messages sent (``deliveries.subject_variant``, status
``sent``) and the people who clicked one of them: deliveries with at least one click
that was not a machine's (issue 16's classing; opens are never used); the one look at
a test counts only messages sent before a cut-off (their clicks have had time to come
in). The decision is one row per (campaign, step identity) in ``experiment_winners``,
a winner or none ("no significant difference", ``variant`` NULL), inserted if absent in
the transaction that read the counts it rests on: two workers judging at once make one
row, and the second uses the first's (:func:`judge_experiment`). A step with a row is
never judged again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, distinct, func, select
from sqlalchemy.dialects import postgresql, sqlite

from ._engine import read_transaction, write_transaction
from ._models import Delivery, Enrollment
from ._results_models import Click, ExperimentWinner
from ._values import from_db_time, to_db_time

__all__ = [
    "Decision",
    "StoredWinner",
    "VariantTally",
    "experiment_winners",
    "judge_experiment",
    "variant_tallies",
]

_D = Delivery.__table__
_E = Enrollment.__table__
_C = Click.__table__
_W = ExperimentWinner.__table__


@dataclass(frozen=True)
class VariantTally:
    """One subject variant of a step: messages sent, and people's unique clicks on them."""

    variant: int  # 1-based, as deliveries.subject_variant
    sent: int
    clicks: int

    def as_json(self) -> dict[str, int]:
        return {"variant": self.variant, "sent": self.sent, "clicks": self.clicks}


@dataclass(frozen=True)
class Decision:
    """A verdict on the counts: the winning variant (1-based; None for no significant
    difference), z and the two-sided p-value of the weakest comparison."""

    variant: int | None
    z: float
    p_value: float


@dataclass(frozen=True)
class StoredWinner:
    """A judged A/B test as recorded: the winner (or None: no significant difference) and
    the counts it was decided on."""

    campaign: str
    step_id: str
    variant: int | None  # None: judged, no significant difference; the split goes on
    subject: str | None  # the winning variant as the step file had it then
    decided_at: datetime  # aware UTC
    z: float
    p_value: float
    tallies: tuple[VariantTally, ...]


def variant_tallies(
    conn: Connection, campaign: str, step_id: str, *, sent_before: datetime | None = None
) -> list[VariantTally]:
    """Each variant's sent messages and people's unique clicks, by variant number.

    One grouped query over the step's sent deliveries (the clicks are joined on the
    delivery id index), so judging a step costs the same whenever it is asked.
    ``sent_before`` (aware UTC): only messages whose ``sent_at`` is earlier count.
    """
    cutoff = [] if sent_before is None else [_D.c.sent_at < to_db_time(sent_before)]
    rows = conn.execute(
        select(
            _D.c.subject_variant,
            func.count(distinct(_D.c.id)),
            func.count(distinct(_C.c.delivery_id)),  # NULL (no person's click) not counted
        )
        .select_from(
            _D.join(_E, _E.c.id == _D.c.enrollment_id).outerjoin(
                _C, (_C.c.delivery_id == _D.c.id) & (_C.c.machine.is_(False))
            )
        )
        .where(
            _E.c.campaign == campaign,
            _D.c.step_id == step_id,
            _D.c.status == "sent",
            _D.c.subject_variant.is_not(None),
            *cutoff,
        )
        .group_by(_D.c.subject_variant)
        .order_by(_D.c.subject_variant)
    ).all()
    return [VariantTally(int(v), int(sent), int(clicks or 0)) for v, sent, clicks in rows]


def _stored(row: Any) -> StoredWinner:
    return StoredWinner(
        campaign=row.campaign,
        step_id=row.step_id,
        variant=row.variant,
        subject=row.subject,
        decided_at=from_db_time(row.decided_at),  # type: ignore[arg-type]
        z=row.z,
        p_value=row.p_value,
        tallies=tuple(
            VariantTally(int(t["variant"]), int(t["sent"]), int(t["clicks"])) for t in row.tallies
        ),
    )


def _read(conn: Connection, campaign: str, step_id: str) -> StoredWinner | None:
    row = conn.execute(select(_W).where(_W.c.campaign == campaign, _W.c.step_id == step_id)).first()
    return None if row is None else _stored(row)


def experiment_winners(engine: Engine, campaign: str) -> dict[str, StoredWinner]:
    """Every decided A/B test of ``campaign``, by step identity."""
    with read_transaction(engine) as conn:
        rows = conn.execute(select(_W).where(_W.c.campaign == campaign)).all()
    return {row.step_id: _stored(row) for row in rows}


def judge_experiment(
    engine: Engine,
    campaign: str,
    step_id: str,
    subjects: Sequence[str],
    *,
    decide: Callable[[list[VariantTally]], Decision | None],
    now: datetime,
    sent_before: datetime | None = None,
) -> StoredWinner | None:
    """The step's decision: the recorded one, or the one ``decide`` makes on the counts now.

    ``decide`` gets each variant's counts (messages sent before ``sent_before``, when
    given) and returns a :class:`Decision` (its ``variant`` None for no significant
    difference) or None (not yet: too few sends). The first decision is recorded,
    whatever it is, and returned ever after: a step is judged once. Deciding happens in
    one write transaction that reads the counts again and inserts the row if none
    exists; a concurrent decision (another worker) wins the unique key and its row is
    returned. The cheap path (a stored row, or not ready) takes no write lock.
    ``subjects`` are the step's variants as written now; ``now`` and ``sent_before`` are
    aware UTC. Raises StoreError.
    """
    with read_transaction(engine) as conn:
        stored = _read(conn, campaign, step_id)
        if stored is not None:
            return stored
        if decide(variant_tallies(conn, campaign, step_id, sent_before=sent_before)) is None:
            return None
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with write_transaction(engine) as conn:
        tallies = variant_tallies(conn, campaign, step_id, sent_before=sent_before)
        decision = decide(tallies)
        winner = None if decision is None else decision.variant
        if decision is not None and (winner is None or 1 <= winner <= len(subjects)):
            conn.execute(
                dialect.insert(_W)
                .values(
                    campaign=campaign,
                    step_id=step_id,
                    variant=winner,
                    subject=None if winner is None else subjects[winner - 1],
                    decided_at=to_db_time(now),
                    z=decision.z,
                    p_value=decision.p_value,
                    tallies=[t.as_json() for t in tallies],
                )
                .on_conflict_do_nothing(index_elements=["campaign", "step_id"])
            )
        return _read(conn, campaign, step_id)
