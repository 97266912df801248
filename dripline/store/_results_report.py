"""The numbers of ``dripline report``: per step, per day, and time to conversion.

Per step (by identity): messages sent, deliveries skipped (the step's ``when`` was false
for the subscriber: never sent, so in no other count), delivered (sent and not bounced),
people's unique clicks (deliveries with at least one click that was not a machine's) and their
rate over delivered, of those the ones resting only on unclassified user agents
(:data:`dripline.useragents.UNCLASSIFIED_CLASSES`), machine clicks, ambiguous sends (the
relay may or may not have the message: a crash or a cut connection after the data went;
counted by their last attempt, in no other count), opens (deliveries whose image loaded: unreliable,
privacy proxies load every image), bounces and complaints reported for that step's
messages, and the unsubscribes and conversions that followed it: an enrollment that
ended is counted at the last message it was sent before it ended (for a conversion,
sent at or before the goal event; an enrollment both unsubscribed and converted counts in
both). ``since`` keeps messages sent from then on, and
conversions from then on; ``enrolled`` and the conversion rate then cover the people
enrolled from then on (the rate is that cohort's share, not a windowed count over all enrollments).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine, select

from ..useragents import UNCLASSIFIED_CLASSES
from ._bounce_models import COMPLAINT, HARD, SOFT, BounceEvent
from ._engine import read_transaction
from ._models import Delivery, Enrollment
from ._results_models import Click, Open
from ._values import from_db_time, to_db_time

__all__ = ["CampaignResults", "StepResults", "campaign_results"]

_D = Delivery.__table__
_E = Enrollment.__table__
_C = Click.__table__
_O = Open.__table__
_B = BounceEvent.__table__


@dataclass
class StepResults:
    step: str  # identity
    number: int | None  # position in the files now (None: no longer in them)
    subject: str | None
    sent: int = 0
    skipped: int = 0  # the step's `when` was false: not a message, no other count has it
    delivered: int = 0
    bounces: int = 0
    complaints: int = 0
    clicks: int = 0  # people's unique clicks
    machine_clicks: int = 0
    ambiguous: int = 0  # maybe sent: the relay may have the message (never re-sent)
    unclassified_clicks: int = 0  # of ``clicks``, those only unclassified agents made
    opens: int = 0
    unsubscribes: int = 0
    conversions: int = 0

    @property
    def click_rate(self) -> float:
        return self.clicks / self.delivered if self.delivered else 0.0


@dataclass
class CampaignResults:
    campaign: str
    since: date | None
    steps: list[StepResults] = field(default_factory=list)
    sends_per_day: list[tuple[date, int]] = field(default_factory=list)
    enrolled: int = 0  # with ``since``: enrolled from then on
    converted: int = 0  # of those ``enrolled``, how many converted (from ``since`` on)
    conversion_hours: list[float] = field(default_factory=list)

    @property
    def conversions(self) -> int:
        """Conversions from ``since`` on, whenever the person enrolled."""
        return len(self.conversion_hours)

    @property
    def conversion_rate(self) -> float:
        """Share of the enrollments (of the window, with ``since``) that converted: one
        cohort for numerator and denominator, never a windowed count over all time."""
        return self.converted / self.enrolled if self.enrolled else 0.0

    def total(self, name: str) -> int:
        return sum(getattr(step, name) for step in self.steps)


def campaign_results(
    engine: Engine,
    campaign: str,
    steps: Sequence[tuple[str, str | None]],
    *,
    since: datetime | None = None,
) -> CampaignResults:
    """Results of ``campaign``; ``steps`` is (identity, subject) in the files' order.

    Steps that only the database knows (removed since) follow, by their old position.
    ``since`` is aware UTC or None.
    """
    floor = to_db_time(since) if since is not None else None
    results = CampaignResults(campaign, since.date() if since else None)
    by_id = {
        identity: StepResults(identity, number, subject)
        for number, (identity, subject) in enumerate(steps, start=1)
    }
    with read_transaction(engine) as conn:
        enrollments = conn.execute(
            select(_E.c.id, _E.c.status, _E.c.enrolled_at, _E.c.converted_at).where(
                _E.c.campaign == campaign
            )
        ).all()
        sent = conn.execute(
            select(_D.c.id, _D.c.enrollment_id, _D.c.step, _D.c.step_id, _D.c.sent_at, _D.c.subject)
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .where(_E.c.campaign == campaign, _D.c.status == "sent", _D.c.sent_at.is_not(None))
            .order_by(_D.c.sent_at, _D.c.id)
        ).all()
        ambiguous = conn.execute(
            select(_D.c.step, _D.c.step_id, _D.c.attempted_at, _D.c.first_attempt_at)
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .where(_E.c.campaign == campaign, _D.c.status == "ambiguous")
        ).all()
        # A skipped delivery was never sent: it has no sent_at, so it counts from its due time.
        skipped = conn.execute(
            select(_D.c.step, _D.c.step_id, _D.c.due_at)
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .where(_E.c.campaign == campaign, _D.c.status == "skipped")
        ).all()
        ids = select(_D.c.id).join(_E, _E.c.id == _D.c.enrollment_id)
        ids = ids.where(_E.c.campaign == campaign)
        clicks = conn.execute(
            select(_C.c.delivery_id, _C.c.machine, _C.c.user_agent_class).where(
                _C.c.delivery_id.in_(ids)
            )
        ).all()
        opened = set(conn.scalars(select(_O.c.delivery_id).where(_O.c.delivery_id.in_(ids))))
        bounces = conn.execute(
            select(_B.c.delivery_id, _B.c.kind).where(
                _B.c.delivery_id.in_(ids), _B.c.undone_at.is_(None)
            )
        ).all()
    cohort = [e for e in enrollments if floor is None or e.enrolled_at >= floor]
    results.enrolled = len(cohort)
    results.converted = sum(
        e.converted_at is not None and (floor is None or e.converted_at >= floor) for e in cohort
    )
    extra = sorted(
        {
            (row.step, row.step_id)
            for row in (*sent, *skipped, *ambiguous)
            if row.step_id not in by_id
        }
    )
    for _position, identity in extra:
        if identity not in by_id:
            subject = next((r.subject for r in sent if r.step_id == identity), None)
            by_id[identity] = StepResults(identity, None, subject)
    counted = [row for row in sent if floor is None or row.sent_at >= floor]
    counted_ids = {row.id for row in counted}
    bounced = {d for d, kind in bounces if kind in (HARD, SOFT)}
    complained = {d for d, kind in bounces if kind == COMPLAINT}
    people = {c.delivery_id for c in clicks if not c.machine}
    known = {
        c.delivery_id
        for c in clicks
        if not c.machine and c.user_agent_class not in UNCLASSIFIED_CLASSES
    }
    machine_clicks = Counter(c.delivery_id for c in clicks if c.machine)
    for row in counted:
        step = by_id[row.step_id]
        step.sent += 1
        step.bounces += row.id in bounced
        step.complaints += row.id in complained
        step.delivered += row.id not in bounced
        step.clicks += row.id in people
        step.unclassified_clicks += row.id in people and row.id not in known
        step.machine_clicks += machine_clicks[row.id]
        step.opens += row.id in opened
    for row in skipped:
        if floor is None or row.due_at >= floor:
            by_id[row.step_id].skipped += 1
    for row in ambiguous:  # no sent_at: the time of its (last) attempt
        tried = row.attempted_at or row.first_attempt_at
        if floor is None or (tried is not None and tried >= floor):
            by_id[row.step_id].ambiguous += 1
    days = Counter(row.sent_at.date() for row in counted)
    results.sends_per_day = sorted(days.items())
    history: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
    for row in sent:
        history[row.enrollment_id].append((row.sent_at, row.id, row.step_id))
    for enrollment in enrollments:
        messages = history.get(enrollment.id, [])
        in_window = floor is None or (
            enrollment.converted_at is not None and enrollment.converted_at >= floor
        )
        if enrollment.converted_at is not None and in_window:
            before = [m for m in messages if m[0] <= enrollment.converted_at]
            if before:
                by_id[before[-1][2]].conversions += 1
            start = from_db_time(enrollment.enrolled_at)
            end = from_db_time(enrollment.converted_at)
            if start is not None and end is not None:
                hours = max(0.0, (end - start).total_seconds() / 3600)
                results.conversion_hours.append(hours)
        # Not elif: an unsubscribe is one whether or not a conversion came too.
        if enrollment.status == "unsubscribed" and messages and messages[-1][1] in counted_ids:
            by_id[messages[-1][2]].unsubscribes += 1
    results.steps = list(by_id.values())
    return results
