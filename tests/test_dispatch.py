"""Dispatch passes against a real SQLite store and the in-memory sender; messages parsed back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from typing import Self
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dripline.dispatch import RetryPolicy, dispatch_pass
from dripline.errors import RenderError
from dripline.store import (
    ClaimedDelivery,
    Delivery,
    NewSubscriber,
    SqlDeliveryQueue,
    Subscriber,
    normalize_email,
    subscribe,
    subscriber_timeline,
)
from sender.base import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SenderConfigError,
    SendResult,
    TransientSendError,
)
from sender.memory import MemorySender

LA = ZoneInfo("America/Los_Angeles")
SLUG = "ketamine-therapy"
AT = datetime(2026, 3, 5, 20, 0, tzinfo=LA)


def build(item: ClaimedDelivery, now: datetime) -> OutgoingMessage:
    """A plain message standing in for the rendered one (rendering is not under test)."""
    msg = EmailMessage()
    msg["From"] = "hello@example.com"
    msg["To"] = item.email
    msg["Subject"] = f"step {item.step}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(f"Hi {item.first_name}")
    return OutgoingMessage(
        envelope_from="hello@example.com",
        recipients=(item.email,),
        data=msg.as_bytes(policy=policy.SMTP),
        message_id=msg["Message-ID"],
    )


class ScriptedSender(Sender):
    """Answers like a server would: each call pops the next reply (an exception or OK)."""

    def __init__(self, replies: list[Exception | None]):
        super().__init__()
        self.replies = replies
        self.sent: list[OutgoingMessage] = []

    @classmethod
    def from_url(cls, url: str, *, secrets: Mapping[str, str] | None = None) -> Self:
        return cls([])

    def _send(self, message: OutgoingMessage) -> SendResult:
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None:
            raise reply
        self.sent.append(message)
        return SendResult(message_id=message.message_id, reply="250 ok", code=250)


@pytest.fixture
def queue(engine, timetable):
    return SqlDeliveryQueue(engine, lambda slug: timetable)


def enroll(engine, timetable, *emails: str) -> None:
    for email in emails:
        person = NewSubscriber(
            email=normalize_email(email),
            name="Ada Lovelace",
            timezone="America/Los_Angeles",
            subscribed_at=AT,
        )
        subscribe(engine, timetable, SLUG, person)


def test_whole_sequence_goes_out_once_in_order_on_distinct_days(engine, timetable, queue):
    MemorySender.clear("dispatch")
    enroll(engine, timetable, "a@example.com", "b@example.com")
    sender = MemorySender("dispatch")
    clock = AT
    while clock < AT + timedelta(days=21):
        report = dispatch_pass(queue, build, sender, clock, batch_size=1)
        assert report.failed == report.released == 0
        clock += timedelta(hours=1)
    received: dict[str, list[tuple[str, datetime]]] = {}
    for out in MemorySender.outbox("dispatch"):
        parsed = message_from_bytes(out.data, policy=policy.default)
        received.setdefault(parsed["To"], []).append(
            (parsed["Subject"], parsedate_to_datetime(parsed["Date"]).astimezone(LA))
        )
    for email in ("a@example.com", "b@example.com"):
        subjects = [s for s, _ in received[email]]
        assert subjects == [f"step {n}" for n in range(1, 7)]
        days = [d.date() for _, d in received[email]]
        assert len(set(days)) == 6
        with engine.connect() as conn:
            ids = set(conn.scalars(select(Delivery.message_id)))
        assert len(ids) == 12
        assert [e.status for e in subscriber_timeline(engine, SLUG, email)] == ["sent"] * 6


def test_temporary_failure_is_retried_then_given_up(engine, timetable, queue):
    enroll(engine, timetable, "a@example.com")
    busy = TransientSendError("451 try again later", code=451)
    sender = ScriptedSender([busy, busy, busy])
    retry = RetryPolicy(max_attempts=3, first_delay=timedelta(minutes=5))
    assert dispatch_pass(queue, build, sender, AT, retry=retry).deferred == 1
    assert dispatch_pass(queue, build, sender, AT + timedelta(minutes=4), retry=retry).claimed == 0
    assert dispatch_pass(queue, build, sender, AT + timedelta(minutes=5), retry=retry).deferred == 1
    report = dispatch_pass(queue, build, sender, AT + timedelta(minutes=15), retry=retry)
    assert report.failed == 1 and "gave up after 3 attempts" in report.errors[0]
    entry = subscriber_timeline(engine, SLUG, "a@example.com")[0]
    assert entry.status == "failed" and sender.sent == []


def test_ambiguous_send_is_never_retried(engine, timetable, queue):
    enroll(engine, timetable, "a@example.com")
    lost = TransientSendError("connection lost after DATA", ambiguous=True)
    assert dispatch_pass(queue, build, ScriptedSender([lost]), AT).ambiguous == 1
    assert dispatch_pass(queue, build, ScriptedSender([]), AT + timedelta(days=1)).claimed == 0
    assert subscriber_timeline(engine, SLUG, "a@example.com")[0].status == "ambiguous"


def test_bounce_marks_subscriber_and_cancels_the_rest(engine, timetable, queue):
    enroll(engine, timetable, "gone@example.com")
    dead = PermanentSendError("550 5.1.1 no such user", code=550, bounce=True)
    assert dispatch_pass(queue, build, ScriptedSender([dead]), AT).bounced == 1
    assert [e.status for e in subscriber_timeline(engine, SLUG, "gone@example.com")] == [
        "failed"
    ] + ["cancelled"] * 5
    with engine.connect() as conn:
        assert conn.scalar(select(Subscriber.status)) == "bounced"


def test_stop_finishes_the_message_in_flight_and_releases_the_rest(engine, timetable, queue):
    enroll(engine, timetable, "a@example.com", "b@example.com", "c@example.com")
    sender = ScriptedSender([])
    report = dispatch_pass(queue, build, sender, AT, should_stop=lambda: len(sender.sent) >= 1)
    assert (report.claimed, report.sent, report.released) == (3, 1, 2)
    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.status, Delivery.attempts).where(Delivery.step == 1))
        assert sorted(rows) == [("scheduled", 0), ("scheduled", 0), ("sent", 1)]
    assert dispatch_pass(queue, build, sender, AT).sent == 2  # the released ones go next time


def test_unusable_sender_releases_the_batch_and_says_so(engine, timetable, queue):
    enroll(engine, timetable, "a@example.com", "b@example.com")
    refused = SenderConfigError("535 authentication failed")
    with pytest.raises(SenderConfigError):
        dispatch_pass(queue, build, ScriptedSender([refused]), AT)
    assert {e.status for e in subscriber_timeline(engine, SLUG, "a@example.com")} == {"scheduled"}
    assert subscriber_timeline(engine, SLUG, "b@example.com")[0].status == "scheduled"


def test_render_error_fails_that_delivery_only(engine, timetable, queue):
    enroll(engine, timetable, "a@example.com", "b@example.com")

    def picky(item: ClaimedDelivery, now: datetime) -> OutgoingMessage:
        if item.email == "a@example.com":
            raise RenderError("undefined variable subscriber.plan", path="01.md", line=3)
        return build(item, now)

    report = dispatch_pass(queue, picky, ScriptedSender([]), AT)
    assert (report.sent, report.failed) == (1, 1)
    assert "undefined variable" in report.errors[0]
    assert subscriber_timeline(engine, SLUG, "a@example.com")[0].status == "failed"
