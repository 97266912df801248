"""Bounce and complaint figures for ``dripline status``: per step, and rates over 30 days.

Rates are over the messages sent in the window: the share of them that bounced hard (a
soft bounce says nothing about the list) or drew a complaint, whenever the report came.
Counting reports by when they arrived instead would set last month's bounces against
this month's sends (a rate over 100%, or bounces against 0 sent shown as 0%). Undone
events do not count, and a message reported twice (a DSN and a webhook) counts once.
Thresholds follow Gmail's and Yahoo's bulk-sender guidance (complaints under 0.3%) and
the common 2% ceiling for bounces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from ._bounce_models import COMPLAINT, HARD, SOFT, BounceEvent
from ._engine import read_transaction
from ._models import Delivery, Enrollment
from ._values import to_db_time

__all__ = ["BOUNCE_RATE_LIMIT", "COMPLAINT_RATE_LIMIT", "BounceFigures", "bounce_figures"]

COMPLAINT_RATE_LIMIT = 0.003
BOUNCE_RATE_LIMIT = 0.02
_B = BounceEvent.__table__
_D = Delivery.__table__
_E = Enrollment.__table__


@dataclass
class BounceFigures:
    """Per step: (bounces, complaints); and the window's counts and rates."""

    per_step: dict[int, tuple[int, int]] = field(default_factory=dict)
    window_days: int = 30
    sent: int = 0
    hard_bounces: int = 0
    complaints: int = 0

    @property
    def bounce_rate(self) -> float:
        return self.hard_bounces / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    def warnings(self) -> list[str]:
        found = []
        if self.complaint_rate > COMPLAINT_RATE_LIMIT:
            found.append(
                f"complaint rate {self.complaint_rate:.2%} over the last {self.window_days} days "
                f"is above {COMPLAINT_RATE_LIMIT:.1%}: mailbox providers start filtering "
                "or blocking at this level"
            )
        if self.bounce_rate > BOUNCE_RATE_LIMIT:
            found.append(
                f"bounce rate {self.bounce_rate:.2%} over the last {self.window_days} days "
                f"is above {BOUNCE_RATE_LIMIT:.0%}: clean the list before sending more"
            )
        return found

    def as_json(self) -> dict[str, object]:
        return {
            "days": self.window_days,
            "sent": self.sent,
            "hard_bounces": self.hard_bounces,
            "complaints": self.complaints,
            "bounce_rate": round(self.bounce_rate, 6),
            "complaint_rate": round(self.complaint_rate, 6),
            "warnings": self.warnings(),
        }


def bounce_figures(
    engine: Engine, campaign: str | None, *, now: datetime, days: int = 30
) -> BounceFigures:
    """Figures for one campaign (or all), the window ending at ``now`` (aware UTC)."""
    since = to_db_time(now - timedelta(days=days))
    figures = BounceFigures(window_days=days)
    live = _B.c.undone_at.is_(None)
    per_step = (
        select(_D.c.step, _B.c.kind, func.count())
        .select_from(_B)
        .join(_D, _D.c.id == _B.c.delivery_id)
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(live)
        .group_by(_D.c.step, _B.c.kind)
    )
    until = to_db_time(now)
    recent = (
        select(_B.c.kind, func.count(func.distinct(_B.c.delivery_id)))
        .select_from(_B)
        .join(_D, _D.c.id == _B.c.delivery_id)
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(live, _D.c.sent_at >= since, _D.c.sent_at <= until)
        .group_by(_B.c.kind)
    )
    sent = (
        select(func.count())
        .select_from(_D)
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(_D.c.sent_at >= since, _D.c.sent_at <= until)
    )
    if campaign is not None:
        per_step = per_step.where(_E.c.campaign == campaign)
        recent = recent.where(_E.c.campaign == campaign)
        sent = sent.where(_E.c.campaign == campaign)
    with read_transaction(engine) as conn:
        for step, kind, count in conn.execute(per_step):
            bounces, complaints = figures.per_step.get(step, (0, 0))
            if kind in (HARD, SOFT):
                bounces += count
            elif kind == COMPLAINT:
                complaints += count
            figures.per_step[step] = (bounces, complaints)
        for kind, count in conn.execute(recent):
            if kind == HARD:
                figures.hard_bounces = count
            elif kind == COMPLAINT:
                figures.complaints = count
        figures.sent = conn.scalar(sent) or 0
    return figures
