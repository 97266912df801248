"""Double opt-in in the store: pending sign-ups, confirmation with recorded consent, and
unsubscribing by a subscriber's public key.

A sign-up never changes an existing subscriber: an active one keeps getting mail, an
unsubscribed one stays unsubscribed until they confirm. Only the confirmation
(:func:`confirm_signup`) activates and enrolls, through :func:`~dripline.store.subscribe`,
so a pending subscriber has no deliveries and nothing marketing can reach them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..timetable import Timetable
from ._consent_models import Consent, SignupRequest
from ._engine import read_transaction, write_transaction
from ._enroll import NewSubscriber, subscribe
from ._models import Delivery, Enrollment, Subscriber
from ._reports import NotSubscribedError, unsubscribe
from ._suppress import suppressed_reasons
from ._values import NormalizedEmail, country_of, from_db_time, normalize_email, to_db_time

__all__ = [
    "ConfirmedSignup",
    "SignupForm",
    "SignupTicket",
    "confirm_signup",
    "enrolled_campaigns",
    "forget_unconfirmed",
    "pending_signup_campaign",
    "request_signup",
    "unsubscribe_by_key",
]

_S = Subscriber.__table__
_E = Enrollment.__table__
_D = Delivery.__table__
_R = SignupRequest.__table__
_C = Consent.__table__


@dataclass(frozen=True)
class SignupForm:
    """A checked sign-up as posted, with where and how it came in."""

    campaign: str
    email: NormalizedEmail
    first_name: str
    timezone: str | None
    form: str  # the form's path, e.g. /subscribe/ketamine-therapy
    consent_text: str
    ip: str
    user_agent: str
    country: str | None = None  # ISO 3166-1 alpha-2, checked (for public holidays)


@dataclass(frozen=True)
class SignupTicket:
    """What to do after a sign-up: send a confirmation for ``request_key``, or nothing."""

    request_key: str | None  # None: send nothing (see ``reason``)
    reason: str  # "send", "rate-limited", "bounced" or "suppressed: WHY"


@dataclass(frozen=True)
class ConfirmedSignup:
    campaign: str
    newly_enrolled: bool
    next_due: datetime | None  # the next email's due time (UTC); None: nothing left to send
    timezone: str | None  # the subscriber's zone (None: the campaign's default)


def request_signup(
    engine: Engine, signup: SignupForm, *, now: datetime, emails_per_hour: int = 3
) -> SignupTicket:
    """Record a sign-up request (creating a pending subscriber for a new address).

    The hourly count of confirmation emails per address is read and bumped in the same
    write transaction (the subscriber row is locked on PostgreSQL; SQLite writers are
    serial), so concurrent processes cannot exceed it together. Two first sign-ups of
    one new address can race to insert it; the loser retries and finds the row.
    """
    for attempt in range(3):
        try:
            with write_transaction(engine) as conn:
                return _record_signup(conn, signup, now, emails_per_hour)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _record_signup(
    conn: Connection, signup: SignupForm, now: datetime, emails_per_hour: int
) -> SignupTicket:
    now_db = to_db_time(now)
    suppressed = suppressed_reasons(conn, [signup.email.key]).get(signup.email.key)
    if suppressed is not None:
        return SignupTicket(None, f"suppressed: {suppressed.describe()}")
    row = conn.execute(
        select(_S.c.id, _S.c.status).where(_S.c.email_key == signup.email.key).with_for_update()
    ).first()
    if row is None:
        subscriber_id = conn.execute(
            insert(_S).values(
                email_key=signup.email.key,
                email=str(signup.email),
                name=signup.first_name,
                first_name=signup.first_name,
                timezone=signup.timezone,
                attributes={},
                status="pending",
                consent_at=now_db,  # replaced by the confirmation time on confirming
                consent_source=f"pending: {signup.form}"[:200],
                created_at=now_db,
            )
        ).inserted_primary_key[0]
    elif row.status == "bounced":
        return SignupTicket(None, "bounced")
    else:
        subscriber_id = row.id
    recent = conn.scalar(
        select(func.count())
        .select_from(_R)
        .where(
            _R.c.email_key == signup.email.key,
            _R.c.created_at > to_db_time(now - timedelta(hours=1)),
            _R.c.email_sent.is_(True),
        )
    )
    if (recent or 0) >= emails_per_hour:
        return SignupTicket(None, "rate-limited")
    key = secrets.token_urlsafe(16)
    conn.execute(
        insert(_R).values(
            key=key,
            subscriber_id=subscriber_id,
            campaign=signup.campaign,
            email_key=signup.email.key,
            first_name=signup.first_name,
            timezone=signup.timezone,
            country=signup.country,
            form=signup.form,
            consent_text=signup.consent_text,
            ip=signup.ip[:64],
            user_agent=signup.user_agent[:500],
            created_at=now_db,
            email_sent=True,  # counted even if the send then fails: a retry is a new email
            confirmed_at=None,
        )
    )
    return SignupTicket(key, "send")


def pending_signup_campaign(engine: Engine, request_key: str) -> str | None:
    """The campaign a sign-up request is for, or None if there is no such request."""
    with read_transaction(engine) as conn:
        return conn.scalar(select(_R.c.campaign).where(_R.c.key == request_key))


def confirm_signup(
    engine: Engine,
    table: Timetable,
    request_key: str,
    *,
    ip: str,
    user_agent: str,
    now: datetime,
) -> ConfirmedSignup | None:
    """Record consent for a sign-up request, then activate and enroll; None if unknown.

    Consent is written first and enrollment second: if the process dies between the
    two, confirming again finishes the enrollment. Otherwise a repeat changes nothing:
    an old link clicked again never undoes a later unsubscribe. A first confirmation by
    someone who had unsubscribed from the campaign re-opens it: the steps not yet sent
    are scheduled again, spaced as the campaign says, from now.
    Raises :class:`~dripline.store.InvalidSubscriberError` for an address that bounced.
    """
    now_db = to_db_time(now)
    with write_transaction(engine) as conn:
        request = conn.execute(
            select(_R, _S.c.email)
            .join(_S, _S.c.id == _R.c.subscriber_id)
            .where(_R.c.key == request_key)
            .with_for_update(of=_R)  # a double click waits here on PostgreSQL
        ).first()
        if request is None:
            return None
        first_time = request.confirmed_at is None
        if first_time:
            conn.execute(
                insert(_C).values(
                    subscriber_id=request.subscriber_id,
                    signup_request_id=request.id,
                    campaign=request.campaign,
                    given_at=now_db,
                    ip=ip[:64],
                    user_agent=user_agent[:500],
                    form=request.form,
                    consent_text=request.consent_text,
                )
            )
            conn.execute(update(_R).where(_R.c.id == request.id).values(confirmed_at=now_db))
        enrollment_id = conn.scalar(
            select(_E.c.id).where(
                _E.c.subscriber_id == request.subscriber_id, _E.c.campaign == request.campaign
            )
        )
    created = False
    if first_time or enrollment_id is None:
        person = NewSubscriber(
            email=normalize_email(request.email),
            first_name=request.first_name,
            timezone=request.timezone,
            subscribed_at=now,
            attributes={"country": request.country} if request.country else {},
        )
        source = f"form: {request.form}"[:200]
        try:
            created, _ = subscribe(engine, table, request.campaign, person, source=source, now=now)
        except IntegrityError:  # a concurrent confirmation enrolled them first
            created, _ = subscribe(engine, table, request.campaign, person, source=source, now=now)
        if not created:
            _reopen_enrollment(engine, table, request.subscriber_id, request.campaign, now)
    with read_transaction(engine) as conn:
        timezone = conn.scalar(select(_S.c.timezone).where(_S.c.id == request.subscriber_id))
        next_due = conn.scalar(
            select(func.min(_D.c.due_at))
            .join(_E, _E.c.id == _D.c.enrollment_id)
            .where(
                _E.c.subscriber_id == request.subscriber_id,
                _E.c.campaign == request.campaign,
                _D.c.status == "scheduled",
            )
        )
    return ConfirmedSignup(request.campaign, created, from_db_time(next_due), timezone)


def _reopen_enrollment(
    engine: Engine, table: Timetable, subscriber_id: int, campaign: str, now: datetime
) -> None:
    """Schedule again the steps an unsubscribe cancelled (never those sent or failed)."""
    with write_transaction(engine) as conn:
        enrollment = conn.execute(
            select(_E.c.id, _E.c.status).where(
                _E.c.subscriber_id == subscriber_id, _E.c.campaign == campaign
            )
        ).first()
        if enrollment is None or enrollment.status != "unsubscribed":
            return
        subscriber = conn.execute(
            select(_S.c.timezone, _S.c.attributes).where(_S.c.id == subscriber_id)
        ).one()
        timezone, country = subscriber.timezone, country_of(subscriber.attributes)
        rows = conn.execute(
            select(_D.c.id, _D.c.step_id, _D.c.status).where(_D.c.enrollment_id == enrollment.id)
        ).all()
        # Positions come from the campaign files, by identity (a step no file has is left).
        position = {r.id: table.number_of(r.step_id) for r in rows}
        reached = [
            n
            for r in rows
            if r.status in ("sent", "sending", "ambiguous") and (n := position[r.id]) is not None
        ]
        if reached:
            new_due = table.retime_remaining(max(reached), now, timezone, country)
        else:
            times = table.due_times(now, timezone, country)
            new_due = {rule.number: when for rule, when in zip(table.steps, times, strict=True)}
        reopened = 0
        for row in rows:
            number = position[row.id]
            if row.status == "cancelled" and number in new_due:
                conn.execute(
                    update(_D)
                    .where(_D.c.id == row.id, _D.c.status == "cancelled")
                    .values(status="scheduled", due_at=to_db_time(new_due[number]), last_error=None)
                )
                reopened += 1
        # Unsubscribed after the sequence had finished: nothing is left to send.
        status = "active" if reopened or any(r.status == "scheduled" for r in rows) else "completed"
        conn.execute(update(_E).where(_E.c.id == enrollment.id).values(status=status))


def forget_unconfirmed(engine: Engine, *, now: datetime, after: timedelta) -> int:
    """Delete pending subscribers whose newest sign-up is older than ``after``; returns how many.

    Someone who never confirmed never consented: their address is kept only as long as
    a confirmation link could still be used, plus a margin.
    """
    cutoff = to_db_time(now - after)
    newest = (
        select(_R.c.subscriber_id, func.max(_R.c.created_at).label("newest"))
        .group_by(_R.c.subscriber_id)
        .subquery()
    )
    with write_transaction(engine) as conn:
        stale = list(
            conn.scalars(
                select(_S.c.id)
                .join(newest, newest.c.subscriber_id == _S.c.id, isouter=True)
                .where(
                    _S.c.status == "pending",
                    or_(newest.c.newest.is_(None), newest.c.newest < cutoff),
                    ~select(_E.c.id).where(_E.c.subscriber_id == _S.c.id).exists(),
                )
            )
        )
        if stale:
            # Children first: SQLite enforces the foreign keys but only cascades when told to.
            conn.execute(delete(_C).where(_C.c.subscriber_id.in_(stale)))
            conn.execute(delete(_R).where(_R.c.subscriber_id.in_(stale)))
            conn.execute(delete(_S).where(_S.c.id.in_(stale), _S.c.status == "pending"))
    return len(stale)


def enrolled_campaigns(engine: Engine, public_key: str) -> list[str]:
    """The campaigns the subscriber with ``public_key`` is (or was) enrolled in."""
    with read_transaction(engine) as conn:
        return list(
            conn.scalars(
                select(_E.c.campaign)
                .join(_S, _S.c.id == _E.c.subscriber_id)
                .where(_S.c.public_key == public_key)
                .order_by(_E.c.campaign)
            )
        )


def unsubscribe_by_key(engine: Engine, public_key: str, campaign: str) -> int:
    """Unsubscribe from ``campaign``; pending deliveries are cancelled in the same transaction.

    Returns how many were cancelled (0 on a repeat, which changes nothing).
    """
    with read_transaction(engine) as conn:
        email = conn.scalar(select(_S.c.email).where(_S.c.public_key == public_key))
    if email is None:
        return 0
    try:
        return unsubscribe(engine, email, campaign)
    except NotSubscribedError:  # deleted in the meantime: there is nothing left to stop
        return 0
