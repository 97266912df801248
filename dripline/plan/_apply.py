"""Carry a plan out in one transaction, and record the campaign revision it made live.

On PostgreSQL the campaign's enrollments are locked first: a ``dripline run`` claim
skips locked enrollments (``FOR UPDATE SKIP LOCKED``), so a worker claims either
before the apply commits (old schedule) or after (new), never in between. On SQLite
the write transaction (``BEGIN IMMEDIATE``) excludes every other writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.orm import aliased

from ..store import (
    CampaignRevision,
    Delivery,
    Enrollment,
    ExperimentWinner,
    TrackedLink,
    read_transaction,
    write_transaction,
)
from ._diff import REMOVED_NOTE, compute_plan
from ._model import CampaignPlan

__all__ = ["apply_campaign", "ensure_baseline", "plan_campaign", "revisions"]

_D = Delivery.__table__
_E = Enrollment.__table__
_R = CampaignRevision.__table__
_L = TrackedLink.__table__
_W = ExperimentWinner.__table__
# Delivery states nothing happens to any more; any other is still open.
_FINAL = ("sent", "failed", "cancelled", "ambiguous", "skipped")


def _db(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _carry_tracked_links(conn: Any, campaign: str, old_id: str, new_id: str) -> None:
    """The renamed step keeps its link positions: a click token in an email already sent
    names (delivery, position), and the delivery now has the new identity. Copied, not
    moved: rows that could not take the new name (``taken`` above) still use the old one.
    A position the new identity already has (it was a step's name before) is kept."""
    have = set(
        conn.scalars(select(_L.c.position).where(_L.c.campaign == campaign, _L.c.step_id == new_id))
    )
    rows = conn.execute(
        select(_L.c.position, _L.c.url).where(_L.c.campaign == campaign, _L.c.step_id == old_id)
    ).all()
    copies = [
        {"campaign": campaign, "step_id": new_id, "position": r.position, "url": r.url}
        for r in rows
        if r.position not in have
    ]
    if copies:
        conn.execute(insert(_L), copies)


def _carry_winner(conn: Any, campaign: str, old_id: str, new_id: str) -> None:
    """The renamed step keeps its A/B winner: a decided test is not judged again as a new
    one (on counts that include the sends made because it won). Moved unless the new
    identity already has one (it was a step's name before)."""
    have = conn.scalar(select(_W.c.id).where(_W.c.campaign == campaign, _W.c.step_id == new_id))
    if have is None:
        conn.execute(
            update(_W)
            .where(_W.c.campaign == campaign, _W.c.step_id == old_id)
            .values(step_id=new_id)
        )


def _set_aside_foreign_decisions(
    conn: Any, campaign: str, state: dict[str, Any], added: Iterable[str], now: datetime
) -> None:
    """A step added under the identity of a removed one is a new test when it shares no
    subject with the decision stored for that identity: the old decision is set aside
    (renamed ``<id>~removed-<time>``, kept for the record) so the new test is judged on
    its own. A restored step with any of its subjects keeps its decision."""
    texts = {step["id"]: step.get("subjects") or [] for step in state["steps"]}
    for identity in added:
        row = conn.execute(
            select(_W.c.id, _W.c.subject, _W.c.tallies).where(
                _W.c.campaign == campaign, _W.c.step_id == identity
            )
        ).first()
        if row is None:
            continue
        decided = {t.get("subject") for t in row.tallies or []} | {row.subject}
        if decided & set(texts.get(identity, [])):
            continue
        stamp = _db(now).strftime("%Y%m%dT%H%M%S")
        conn.execute(
            update(_W).where(_W.c.id == row.id).values(step_id=f"{identity}~removed-{stamp}")
        )


def plan_campaign(
    engine: Engine, campaign: str, state: dict[str, Any], now: datetime
) -> CampaignPlan:
    """What applying ``state`` (see :func:`~._state.campaign_state`) would change; read only."""
    with read_transaction(engine) as conn:
        return compute_plan(conn, campaign, state, now)


def apply_campaign(
    engine: Engine,
    campaign: str,
    state: dict[str, Any],
    now: datetime,
    *,
    git_commit: str | None = None,
) -> CampaignPlan:
    """Apply the plan for ``campaign`` in one transaction; returns the plan carried out.

    Adds the new steps' deliveries, cancels removed steps' scheduled deliveries,
    re-times and renumbers, then records a revision (time, ``git_commit``, summary,
    ``state``). Does nothing when there are no changes and a revision is recorded.
    """
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(_E.c.id).where(_E.c.campaign == campaign).with_for_update())
        plan = compute_plan(conn, campaign, state, now)
        if not plan.changes and plan.live_revision is not None:
            return plan
        ops = plan.ops
        own = select(_E.c.id).where(_E.c.campaign == campaign).scalar_subquery()
        other = aliased(Delivery.__table__)
        for old_id, new_id in ops.renames.items():
            # Sent rows too: the ledger then says the step went out, under its new name.
            taken = (
                select(other.c.id)
                .where(other.c.enrollment_id == _D.c.enrollment_id, other.c.step_id == new_id)
                .exists()
            )
            conn.execute(
                update(_D)
                .where(_D.c.step_id == old_id, _D.c.enrollment_id.in_(own), ~taken)
                .values(step_id=new_id)
            )
            _carry_tracked_links(conn, campaign, old_id, new_id)
            _carry_winner(conn, campaign, old_id, new_id)
        _set_aside_foreign_decisions(conn, campaign, state, [a.id for a in plan.added], now)
        if ops.cancels:
            conn.execute(
                update(_D)
                .where(_D.c.id.in_(ops.cancels), _D.c.status == "scheduled")
                .values(status="cancelled", last_error=REMOVED_NOTE)
            )
        if ops.revive:
            conn.execute(
                update(_D)
                .where(
                    _D.c.id == bindparam("row_id"),
                    _D.c.status == "cancelled",
                    _D.c.last_error == REMOVED_NOTE,
                )
                .values(
                    status="scheduled",
                    due_at=bindparam("new_due"),
                    attempts=0,
                    last_error=None,
                    first_attempt_at=None,
                    worker_id=None,
                ),
                [{"row_id": r["row_id"], "new_due": _db(r["new_due"])} for r in ops.revive],
            )
        if ops.retimes:
            conn.execute(
                update(_D)
                .where(_D.c.id == bindparam("row_id"), _D.c.status == "scheduled")
                .values(due_at=bindparam("new_due")),
                [{"row_id": i, "new_due": _db(due)} for i, due in ops.retimes],
            )
        for identity, position in ops.positions.items():
            conn.execute(
                update(_D)
                .where(_D.c.step_id == identity, _D.c.enrollment_id.in_(own))
                .values(step=position)
            )
        if ops.inserts:
            conn.execute(insert(_D), [{**row, "due_at": _db(row["due_at"])} for row in ops.inserts])
        if ops.reactivate:  # a finished enrollment that gets a step again is active again
            conn.execute(
                update(_E).where(_E.c.id.in_(sorted(ops.reactivate))).values(status="active")
            )
        # An enrollment whose remaining steps were all removed is complete.
        still_open = (
            select(_D.c.id)
            .where(_D.c.enrollment_id == _E.c.id, _D.c.status.not_in(_FINAL))
            .exists()
        )
        if ops.cancels:
            conn.execute(
                update(_E)
                .where(_E.c.campaign == campaign, _E.c.status == "active", ~still_open)
                .values(status="completed")
            )
        conn.execute(
            insert(_R).values(
                campaign=campaign,
                applied_at=_db(now),
                git_commit=git_commit,
                summary=plan.summary() if plan.live_revision is not None else "baseline",
                state=state,
            )
        )
    return plan


def ensure_baseline(
    engine: Engine,
    campaign: str,
    state: dict[str, Any],
    now: datetime,
    *,
    git_commit: str | None = None,
) -> bool:
    """Record ``state`` as the live revision of ``campaign`` if none is; True when it did.

    Called when people are enrolled, so a later edit has something to be compared with.
    """
    with write_transaction(engine) as conn:
        if conn.scalar(select(_R.c.id).where(_R.c.campaign == campaign).limit(1)) is not None:
            return False
        conn.execute(
            insert(_R).values(
                campaign=campaign,
                applied_at=_db(now),
                git_commit=git_commit,
                summary="baseline",
                state=state,
            )
        )
    return True


def revisions(engine: Engine, campaign: str) -> list[dict[str, Any]]:
    """The recorded revisions of ``campaign``, oldest first (time, commit, summary)."""
    with read_transaction(engine) as conn:
        return [
            {
                "id": r.id,
                "applied_at": r.applied_at.replace(tzinfo=UTC),
                "git_commit": r.git_commit,
                "summary": r.summary,
            }
            for r in conn.execute(
                select(_R.c.id, _R.c.applied_at, _R.c.git_commit, _R.c.summary)
                .where(_R.c.campaign == campaign)
                .order_by(_R.c.id)
            )
        ]
