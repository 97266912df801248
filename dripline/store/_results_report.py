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
A step with A/B subjects also has, per variant, its messages sent and people's unique clicks
(grouped by the key of the subject's text, :func:`._experiments.campaign_variant_tallies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, select

from ..useragents import UNCLASSIFIED_CLASSES
from ._bounce_models import COMPLAINT, HARD, SOFT, BounceEvent
from ._engine import read_transaction
from ._experiments import KeyTally, campaign_variant_tallies
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
    # A/B subject variant (1-based, as recorded) -> [sent, people's unique clicks].
    variants: dict[int, list[int]] = field(default_factory=dict)
    # The same counts by subject key and variant, split at the winner's decision.
    variant_rows: list[KeyTally] = field(default_factory=list)

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
    # Conversions with no message sent before them (the goal came before the first send):
    # in the total, in no step.
    converted_before_sending: int = 0

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


def _flag(condition: Any) -> Any:
    """1 where ``condition`` holds, else 0: summed per step."""
    return case((condition, 1), else_=0)


def _exists(table: Any, *where: Any) -> Any:
    return select(table.c.delivery_id).where(table.c.delivery_id == _D.c.id, *where).exists()


def _per_step(conn: Connection, campaign: str, floor: datetime | None) -> list[Any]:
    """The sent messages' figures per step identity, counted by the database: memory and
    time do not grow with the number of deliveries in Python."""
    bounced = _exists(_B, _B.c.kind.in_((HARD, SOFT)), _B.c.undone_at.is_(None))
    complained = _exists(_B, _B.c.kind == COMPLAINT, _B.c.undone_at.is_(None))
    person = _exists(_C, _C.c.machine.is_(False))
    known = _exists(
        _C, _C.c.machine.is_(False), _C.c.user_agent_class.not_in(sorted(UNCLASSIFIED_CLASSES))
    )
    machine = (
        select(func.count())
        .select_from(_C)
        .where(_C.c.delivery_id == _D.c.id, _C.c.machine.is_(True))
        .scalar_subquery()
    )
    query = (
        select(
            _D.c.step_id,
            func.count().label("sent"),
            func.sum(_flag(bounced)).label("bounces"),
            func.sum(_flag(complained)).label("complaints"),
            func.sum(_flag(person)).label("clicks"),
            func.sum(_flag(and_(person, ~known))).label("unclassified"),
            func.sum(machine).label("machine_clicks"),
            func.sum(_flag(_exists(_O))).label("opens"),
        )
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(_E.c.campaign == campaign, _D.c.status == "sent", _D.c.sent_at.is_not(None))
        .group_by(_D.c.step_id)
    )
    if floor is not None:
        query = query.where(_D.c.sent_at >= floor)
    return list(conn.execute(query))


def _counts_by_step(
    conn: Connection, campaign: str, status: str, moment: Any, floor: datetime | None
) -> dict[str, int]:
    query = (
        select(_D.c.step_id, func.count())
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(_E.c.campaign == campaign, _D.c.status == status)
        .group_by(_D.c.step_id)
    )
    if floor is not None:
        query = query.where(moment >= floor)
    return {step_id: count for step_id, count in conn.execute(query)}


def _last_sent(before: Any | None) -> tuple[Any, Any]:
    """(step identity, sent_at) of an enrollment's last sent message (at or before
    ``before``), as correlated scalar subqueries."""
    where = [_D.c.enrollment_id == _E.c.id, _D.c.status == "sent", _D.c.sent_at.is_not(None)]
    if before is not None:
        where.append(_D.c.sent_at <= before)
    last = select(_D.c.step_id, _D.c.sent_at).where(*where)
    last = last.order_by(_D.c.sent_at.desc(), _D.c.id.desc()).limit(1)
    return (
        last.with_only_columns(_D.c.step_id).scalar_subquery(),
        last.with_only_columns(_D.c.sent_at).scalar_subquery(),
    )


def campaign_results(
    engine: Engine,
    campaign: str,
    steps: Sequence[tuple[str, str | None]],
    *,
    since: datetime | None = None,
) -> CampaignResults:
    """Results of ``campaign``; ``steps`` is (identity, subject) in the files' order.

    Steps that only the database knows (removed since) follow, by their old position.
    ``since`` is aware UTC or None. Counted in SQL (GROUP BY step, day); only converted
    and unsubscribed enrollments are read one by one.
    """
    floor = to_db_time(since) if since is not None else None
    results = CampaignResults(campaign, since.date() if since else None)
    by_id = {
        identity: StepResults(identity, number, subject)
        for number, (identity, subject) in enumerate(steps, start=1)
    }
    mine = _E.c.campaign == campaign
    with read_transaction(engine) as conn:
        cohort = select(func.count(), func.sum(_flag(_E.c.converted_at.is_not(None)))).where(mine)
        if floor is not None:
            cohort = cohort.where(_E.c.enrolled_at >= floor)
            cohort = cohort.with_only_columns(
                func.count(), func.sum(_flag(and_(_E.c.converted_at >= floor)))
            )
        enrolled, converted = conn.execute(cohort).one()
        results.enrolled, results.converted = int(enrolled or 0), int(converted or 0)
        known_steps = conn.execute(
            select(_D.c.step, _D.c.step_id, func.max(_D.c.subject))
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .where(mine, _D.c.status.in_(("sent", "skipped", "ambiguous")))
            .group_by(_D.c.step, _D.c.step_id)
            .order_by(_D.c.step, _D.c.step_id)
        ).all()
        figures = _per_step(conn, campaign, floor)
        variants = campaign_variant_tallies(conn, campaign, sent_from=since)
        # A skipped delivery was never sent: it counts from its due time; an ambiguous one
        # from its (last) attempt.
        skipped = _counts_by_step(conn, campaign, "skipped", _D.c.due_at, floor)
        tried = func.coalesce(_D.c.attempted_at, _D.c.first_attempt_at)
        ambiguous = _counts_by_step(conn, campaign, "ambiguous", tried, floor)
        day = func.date(_D.c.sent_at)
        days_query = (
            select(day, func.count())
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .where(mine, _D.c.status == "sent", _D.c.sent_at.is_not(None))
            .group_by(day)
            .order_by(day)
        )
        if floor is not None:
            days_query = days_query.where(_D.c.sent_at >= floor)
        days = conn.execute(days_query).all()
        converted_step, _ = _last_sent(_E.c.converted_at)
        conversions = conn.execute(
            select(_E.c.enrolled_at, _E.c.converted_at, converted_step).where(
                mine,
                _E.c.converted_at.is_not(None),
                *([_E.c.converted_at >= floor] if floor is not None else []),
            )
        ).all()
        left_step, left_at = _last_sent(None)
        unsubscribes = conn.execute(
            select(left_step, left_at).where(mine, _E.c.status == "unsubscribed")
        ).all()
    for _position, identity, subject in known_steps:
        if identity not in by_id:
            by_id[identity] = StepResults(identity, None, subject)
    for row in figures:
        step = by_id[row.step_id]
        step.sent = row.sent
        step.bounces, step.complaints = int(row.bounces or 0), int(row.complaints or 0)
        step.delivered = step.sent - step.bounces
        step.clicks, step.unclassified_clicks = int(row.clicks or 0), int(row.unclassified or 0)
        step.machine_clicks, step.opens = int(row.machine_clicks or 0), int(row.opens or 0)
    for identity, tallies in variants.items():
        by_id[identity].variant_rows = tallies
        for tally in tallies:
            total = by_id[identity].variants.setdefault(tally.variant, [0, 0])
            total[0] += tally.sent
            total[1] += tally.clicks
    for identity, count in skipped.items():
        by_id[identity].skipped = count
    for identity, count in ambiguous.items():
        by_id[identity].ambiguous = count
    results.sends_per_day = [
        (value if isinstance(value, date) else date.fromisoformat(str(value)), count)
        for value, count in days
    ]
    for enrolled_at, converted_at, step_id in conversions:
        if step_id is not None:
            by_id[step_id].conversions += 1
        else:
            results.converted_before_sending += 1
        start, end = from_db_time(enrolled_at), from_db_time(converted_at)
        if start is not None and end is not None:
            results.conversion_hours.append(max(0.0, (end - start).total_seconds() / 3600))
    # An unsubscribe is one whether or not a conversion came too; it counts at the last
    # message sent, when that message is in the window.
    for step_id, sent_at in unsubscribes:
        if step_id is not None and (floor is None or sent_at >= floor):
            by_id[step_id].unsubscribes += 1
    results.steps = list(by_id.values())
    return results
