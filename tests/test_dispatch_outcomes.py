"""What a dispatch pass records for each answer a relay can give, read back from the database.

The sender here answers per recipient as a relay would (accepted, 4xx, 5xx, a bounce, a
connection lost after DATA, a dead connection); everything else is the real dispatcher over
a real SQLite store. Retry times use a policy without jitter, so they are exact.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from edit_support import insert_step, remove_step
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dripline.cli import main
from dripline.dispatch import CampaignLibrary, Dispatcher, PassReport
from dripline.ledger import body_digest
from dripline.metrics import RunMetrics
from dripline.runtime import unsubscribe_link_maker
from dripline.settings import Settings
from dripline.store import SqlDeliveryQueue, StoreError, open_store
from dripline.timetable import Timetable
from sender import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SendError,
    SendResult,
    TransientSendError,
)
from sender.retry import RetryPolicy

T0 = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
NO_JITTER = RetryPolicy(jitter=0.0)
UNSENT = ("dead", "down")  # relay failures, tested on their own below


def _dead_relay(text: str) -> TransientSendError:
    error = TransientSendError(text, code=None)
    error.connection_failure = True  # type: ignore[attr-defined] - as the SMTP sender sets it
    return error


def _unreachable(text: str) -> TransientSendError:
    error = TransientSendError(text, code=None)
    error.unreachable = True  # type: ignore[attr-defined] - no connection could be had at all
    return error


# What the relay answers for each local part (a new error object per message, as a relay's).
ANSWERS = {
    "defer": lambda: TransientSendError(
        "greylisted", code=451, enhanced_status="4.7.1", reply="greylisted, try later"
    ),
    "policy": lambda: PermanentSendError(
        "rejected", code=550, enhanced_status="5.7.1", reply="550 5.7.1 rejected by policy"
    ),
    "gone": lambda: PermanentSendError(
        "no such user", code=550, enhanced_status="5.1.1", reply="no such user", bounce=True
    ),
    "lost": lambda: TransientSendError("connection lost after DATA", ambiguous=True),
    "busy": lambda: TransientSendError("busy", code=421, reply="busy"),
    "dead": lambda: _dead_relay("connection refused"),
    "down": lambda: _unreachable("no route to host"),
}


class Relay(Sender):
    """Answers by the recipient's local part (see ANSWERS); anything else is accepted."""

    schemes = ("relay",)

    def __init__(self) -> None:
        super().__init__()
        self.tried: list[str] = []
        self.accepted: dict[str, OutgoingMessage] = {}

    @classmethod
    def from_url(cls, url: str, *, secrets: object = None) -> Relay:
        return cls()

    def _send(self, message: OutgoingMessage) -> SendResult:
        (recipient,) = message.recipients
        self.tried.append(recipient)
        answer = ANSWERS.get(recipient.split("@")[0].rstrip("0123456789"))
        if answer is not None:
            raise answer()
        self.accepted[recipient] = message
        return SendResult(message_id=message.message_id, reply="250 2.0.0 queued as A1", code=250)


def subscribe(project: Path, *people: str) -> None:
    for address in people:
        args = [
            "subscribe",
            address,
            "--campaign",
            "ketamine-therapy",
            "--tz",
            "America/Los_Angeles",
        ]
        result = CliRunner().invoke(main, ["--root", str(project), *args, "--at", T0.isoformat()])
        assert result.exit_code == 0, result.output


def run_pass(
    project: Path, sender: Sender, at: datetime = NOW, **options: object
) -> tuple[PassReport, dict[str, sqlite3.Row]]:
    """One pass at NOW: its report, and the first steps' rows as the pass left them (read
    before the queue is closed, which would hand back anything still claimed)."""
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    queue = SqlDeliveryQueue(engine, lambda slug: Timetable.of(library.campaign(slug)))
    dispatcher = Dispatcher(queue, sender, library, unsubscribe_link_maker(settings), **options)  # type: ignore[arg-type]
    try:
        return dispatcher.dispatch_due(at), first_steps(project)
    finally:
        dispatcher.close()
        queue.close()
        engine.dispose()


def first_steps(project: Path) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(project / "dripline.db")
    db.row_factory = sqlite3.Row
    rows = db.execute(
        "SELECT s.email, d.* FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id "
        "JOIN subscribers s ON s.id = e.subscriber_id WHERE d.step = 1"
    ).fetchall()
    db.close()
    return {row["email"]: row for row in rows}


def due(row: sqlite3.Row) -> datetime:
    """The row's due time (stored naive, in UTC)."""
    return datetime.fromisoformat(row["due_at"]).replace(tzinfo=UTC)


def test_each_answer_of_the_relay_is_recorded_with_its_reply(project: Path) -> None:
    subscribe(project, *(f"{who}@example.com" for who in ("ok", *ANSWERS) if who not in UNSENT))
    report, rows = run_pass(project, Relay(), retry_policy=NO_JITTER)

    found = {email.split("@")[0]: (r["status"], r["last_error"]) for email, r in rows.items()}
    assert found == {
        "ok": ("sent", None),
        # The stored reason starts with the code and enhanced status, said once.
        "defer": ("scheduled", "451 4.7.1 greylisted, try later"),
        "policy": ("failed", "550 5.7.1 rejected by policy"),
        "gone": ("failed", "550 5.1.1 no such user"),
        "lost": ("ambiguous", "connection lost after DATA"),
        "busy": ("scheduled", "421 busy"),
    }
    # First failure: back after first_delay (5 minutes), counted from this pass.
    for who in ("defer", "busy"):
        row = rows[f"{who}@example.com"]
        assert (due(row), row["attempts"]) == (NOW + timedelta(minutes=5), 1)
    assert rows["ok@example.com"]["reply"] == "250 2.0.0 queued as A1"
    assert report.summary() == (
        "claimed 6, sent 1, deferred 2, failed 1, bounced 1, ambiguous 1, released 0, "
        "skipped 0, unrecorded 0"
    )


def test_past_the_give_up_deadline_a_transient_failure_fails_with_the_count(
    project: Path,
) -> None:
    subscribe(project, "defer@example.com", "busy@example.com")
    # The next try (5 minutes on) would fall after the deadline (1 minute after the first).
    policy = RetryPolicy(jitter=0.0, give_up_after=timedelta(minutes=1))
    report, rows = run_pass(project, Relay(), retry_policy=policy)

    assert {email: (r["status"], r["last_error"]) for email, r in rows.items()} == {
        "defer@example.com": (
            "failed",
            "gave up after 1 attempts: 451 4.7.1 greylisted, try later",
        ),
        "busy@example.com": ("failed", "gave up after 1 attempts: 421 busy"),
    }
    assert (report.failed, report.deferred) == (2, 0)


def test_a_retry_landing_exactly_on_the_deadline_is_still_made(project: Path) -> None:
    subscribe(project, "busy@example.com")
    policy = RetryPolicy(jitter=0.0, give_up_after=timedelta(minutes=5))  # first + 5 min
    _, rows = run_pass(project, Relay(), retry_policy=policy)

    row = rows["busy@example.com"]
    assert (row["status"], due(row)) == ("scheduled", NOW + timedelta(minutes=5))


def test_the_give_up_deadline_counts_from_the_first_attempt(project: Path) -> None:
    subscribe(project, "busy@example.com")
    policy = RetryPolicy(jitter=0.0, give_up_after=timedelta(minutes=12))
    _, rows = run_pass(project, Relay(), retry_policy=policy)
    assert rows["busy@example.com"]["status"] == "scheduled"  # again at NOW + 5 min
    # Second failure at NOW + 5 min: the next try (10 minutes later) would be 15 minutes
    # after the first attempt, past its 12.
    later = NOW + timedelta(minutes=5)
    report, rows = run_pass(project, Relay(), at=later, retry_policy=policy)
    assert (report.failed, report.deferred) == (1, 0)
    row = rows["busy@example.com"]
    assert (row["status"], row["last_error"], row["attempts"]) == (
        "failed",
        "gave up after 2 attempts: 421 busy",
        2,
    )
    assert datetime.fromisoformat(row["first_attempt_at"]).replace(tzinfo=UTC) == NOW


def test_a_dead_relay_is_left_alone_after_three_failures_in_a_row(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # One message per chunk, so each failure is its own attempt at the relay.
    people = ["dead1", "dead2", "ok1", "dead3", "dead4", "dead5", "ok2", "ok3"]
    subscribe(project, *(f"{who}@example.com" for who in people))
    relay = Relay()
    with caplog.at_level(logging.WARNING, logger="dripline.dispatch"):
        report, rows = run_pass(project, relay, retry_policy=NO_JITTER, chunk_size=1)
    # The operator is told once why the rest waits, with the relay's last answer.
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("relay:")] == [
        "relay: 3 consecutive timeouts or connection failures (last: connection refused); "
        "not trying it again this pass, the rest of the claim is deferred"
    ]

    # Two failures, then a success resets the count; three more in a row stop the pass.
    assert [r.split("@")[0] for r in relay.tried] == people[:6]
    errors = {email.split("@")[0]: (r["status"], r["last_error"]) for email, r in rows.items()}
    for who in ("dead1", "dead2", "dead3", "dead4", "dead5"):
        assert errors[who] == ("scheduled", "connection refused")
    assert errors["ok1"] == ("sent", None)
    for who in ("ok2", "ok3"):  # never tried: deferred with backoff, like the failed ones
        assert errors[who] == ("scheduled", "not tried: the relay is not answering")
        assert due(rows[f"{who}@example.com"]) == NOW + timedelta(minutes=5)
    assert (report.sent, report.deferred, report.released) == (1, 7, 0)


def test_replies_that_defer_do_not_count_against_the_relay(project: Path) -> None:
    # A relay that answers 4xx is up: only timeouts and connection failures count.
    people = [f"busy{n}@example.com" for n in range(1, 6)]
    subscribe(project, *people)
    relay = Relay()
    report, rows = run_pass(project, relay, retry_policy=NO_JITTER, chunk_size=1)
    assert sorted(relay.tried) == people
    assert {(r["status"], r["last_error"]) for r in rows.values()} == {("scheduled", "421 busy")}
    assert report.deferred == 5


def test_an_unreachable_relay_counts_once_per_chunk_and_three_chunks_stop_the_pass(
    project: Path,
) -> None:
    # A chunk of three: the first message finds no route, the other two get that same
    # error untried. One failure, not three: the next chunk goes out.
    people = ["down1", "down2", "down3", "ok1", "ok2", "ok3"]
    subscribe(project, *(f"{who}@example.com" for who in people))
    relay = Relay()
    report, rows = run_pass(project, relay, retry_policy=NO_JITTER, chunk_size=3)
    assert [r.split("@")[0] for r in relay.tried] == ["down1", "ok1", "ok2", "ok3"]
    assert {e.split("@")[0]: r["status"] for e, r in rows.items()} == {
        "down1": "scheduled",
        "down2": "scheduled",
        "down3": "scheduled",
        "ok1": "sent",
        "ok2": "sent",
        "ok3": "sent",
    }
    assert rows["down2@example.com"]["last_error"] == "no route to host"
    assert (report.sent, report.deferred) == (3, 3)


def test_three_unreachable_chunks_in_a_row_stop_the_pass(project: Path) -> None:
    people = ["down1", "down2", "down3", "ok1"]
    subscribe(project, *(f"{who}@example.com" for who in people))
    relay = Relay()
    report, rows = run_pass(project, relay, retry_policy=NO_JITTER, chunk_size=1)
    assert [r.split("@")[0] for r in relay.tried] == ["down1", "down2", "down3"]
    assert rows["ok1@example.com"]["last_error"] == "not tried: the relay is not answering"
    assert (report.sent, report.deferred) == (0, 4)


def test_within_one_chunk_a_dead_relay_stops_the_next_message_from_starting(
    project: Path,
) -> None:
    # One chunk holds everyone (the default size): the third failure stops it mid-way.
    people = ["dead1", "dead2", "dead3", "dead4", "ok1"]
    subscribe(project, *(f"{who}@example.com" for who in people))
    relay = Relay()
    report, rows = run_pass(project, relay, retry_policy=NO_JITTER)
    assert [r.split("@")[0] for r in relay.tried] == ["dead1", "dead2", "dead3"]
    for who in ("dead4", "ok1"):
        assert rows[f"{who}@example.com"]["last_error"] == "not tried: the relay is not answering"
    assert (report.sent, report.deferred) == (0, 5)


def test_the_relay_limit_is_a_count_of_failures_in_a_row(project: Path) -> None:
    subscribe(project, "dead1@example.com", "dead2@example.com", "ok1@example.com")
    relay = Relay()
    _, rows = run_pass(project, relay, retry_policy=NO_JITTER, chunk_size=1, relay_failures=2)
    assert len(relay.tried) == 2  # two in a row reach a limit of 2: ok1 is not tried
    assert rows["ok1@example.com"]["last_error"] == ("not tried: the relay is not answering")


@pytest.mark.parametrize("chunk_size", [1, 64], ids=["chunk-of-one", "one-chunk"])
def test_a_stop_mid_pass_hands_the_untried_back_as_they_were(
    project: Path, chunk_size: int
) -> None:
    # A stop is seen between chunks and, within a chunk, before the next message starts.
    subscribe(project, "ok1@example.com", "ok2@example.com", "ok3@example.com")
    stop = threading.Event()

    class StopsAtOnce(Relay):
        def _send(self, message: OutgoingMessage) -> SendResult:
            stop.set()  # SIGTERM while the first message goes out
            return super()._send(message)

    relay = StopsAtOnce()
    report, rows = run_pass(project, relay, stop=stop, chunk_size=chunk_size)
    assert relay.tried == ["ok1@example.com"]
    assert rows["ok1@example.com"]["status"] == "sent"
    # Untried: scheduled again by the pass itself, as they were (no error, no attempt
    # counted, due as before, no worker).
    for who in ("ok2", "ok3"):
        row = rows[f"{who}@example.com"]
        assert (row["status"], row["last_error"], row["attempts"], row["worker_id"]) == (
            "scheduled",
            None,
            0,
            None,
        )
        assert due(row) == T0
    assert (report.sent, report.released) == (1, 2)


def test_reports_of_several_passes_add_up() -> None:
    total = PassReport(claimed=2, sent=1, deferred=1, errors=["a"], held=["c/x", "c/y"])
    total.add(PassReport(claimed=3, sent=2, failed=1, bounced=1, ambiguous=1, released=2,
                         unrecorded=1, errors=["b"], held=["c/y", "b/z"]))  # fmt: skip
    assert total == PassReport(
        claimed=5,
        sent=3,
        deferred=1,
        failed=1,
        bounced=1,
        ambiguous=1,
        released=2,
        unrecorded=1,
        errors=["a", "b"],
        held=["b/z", "c/x", "c/y"],
    )


def test_a_failure_is_stored_with_its_code_once() -> None:
    from dripline.dispatch import _describe

    cases: list[tuple[SendError, str]] = [
        (PermanentSendError("x", code=550, enhanced_status="5.1.1", reply="no user"),
         "550 5.1.1 no user"),
        (PermanentSendError("x", code=550, enhanced_status="5.1.1", reply="550 5.1.1 no user"),
         "550 5.1.1 no user"),
        (TransientSendError("x", code=421, reply="busy"), "421 busy"),
        (TransientSendError("timed out"), "timed out"),
        (TransientSendError("", code=421), "421"),  # a bare code: no "None" after it
        (TransientSendError("x", enhanced_status="4.4.1", reply="no answer"), "4.4.1 no answer"),
    ]  # fmt: skip
    assert [_describe(error) for error, _ in cases] == [text for _, text in cases]


def test_each_pass_holds_the_steps_whose_files_are_gone_now(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dripline.dispatch")
    subscribe(project, "ok@example.com")
    campaign = project / "campaigns/ketamine-therapy"
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    queue = SqlDeliveryQueue(engine, lambda slug: Timetable.of(library.campaign(slug)))
    dispatcher = Dispatcher(queue, Relay(), library, unsubscribe_link_maker(settings))
    try:
        assert dispatcher.dispatch_due(NOW).held == []
        original = project / "original"
        shutil.copytree(campaign, original)
        remove_step(project, "neuroplasticity")
        assert dispatcher.dispatch_due(NOW).held == ["ketamine-therapy/neuroplasticity"]
        # What `dripline run` says (-v shows the info line).
        said = [r.getMessage() for r in caplog.records if r.name == "dripline.dispatch"]
        assert said == [
            "campaign or template files changed: reloaded",
            "campaign ketamine-therapy: step 'neuroplasticity' has no file any more; its "
            "scheduled deliveries are held (not sent, not failed): see `dripline plan "
            "ketamine-therapy`, then `dripline apply ketamine-therapy`",
        ]
        # Two edits more: each pass holds what is missing now, not what was missing before.
        shutil.rmtree(campaign)
        shutil.copytree(original, campaign)
        remove_step(project, "holistic-health")
        assert dispatcher.dispatch_due(NOW).held == ["ketamine-therapy/holistic-health"]
    finally:
        dispatcher.close()
        queue.close()
        engine.dispose()


def test_a_sent_row_records_the_projects_git_commit(project: Path) -> None:
    git = ["git", "-C", str(project), "-c", "user.name=T", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "campaigns", "templates"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "campaign"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    subscribe(project, "ok@example.com")
    _, rows = run_pass(project, Relay())
    assert rows["ok@example.com"]["campaign_commit"] == head


class LosesTheDatabase(SqlDeliveryQueue):
    """Recording fails while ``down`` is set, as when the database server goes away."""

    down = False

    def settle(self, outcomes, *, attempt=(), now, variants=None):  # type: ignore[no-untyped-def]
        if self.down:
            raise StoreError("server closed the connection unexpectedly")
        return super().settle(outcomes, attempt=attempt, now=now, variants=variants)


def test_after_a_pass_that_could_not_record_the_next_one_hands_back_and_sends(
    project: Path,
) -> None:
    subscribe(project, "ok1@example.com", "ok2@example.com")
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    queue = LosesTheDatabase(engine, lambda slug: Timetable.of(library.campaign(slug)))
    relay = Relay()
    dispatcher = Dispatcher(queue, relay, library, unsubscribe_link_maker(settings))
    try:
        queue.down = True
        with pytest.raises(StoreError):
            dispatcher.dispatch_due(NOW)
        assert {r["status"] for r in first_steps(project).values()} == {"claimed"}
        queue.down = False
        report = dispatcher.dispatch_due(NOW)  # hands its claims back first, then sends
        assert {r["status"] for r in first_steps(project).values()} == {"sent"}
        assert (report.claimed, report.sent) == (2, 2)
        assert sorted(relay.tried) == ["ok1@example.com", "ok2@example.com"]
    finally:
        dispatcher.close()
        queue.close()
        engine.dispose()


def test_a_sent_row_keeps_the_ledger_of_what_went_out(project: Path) -> None:
    subscribe(project, "ok@example.com")
    relay = Relay()
    _, rows = run_pass(project, relay)
    message = relay.accepted["ok@example.com"]
    row = rows["ok@example.com"]
    assert (row["message_id"], row["reply"]) == (message.message_id, "250 2.0.0 queued as A1")
    assert datetime.fromisoformat(row["sent_at"]).replace(tzinfo=UTC) == NOW
    assert row["subject"] == "Reason 1 of 6: Rapid relief from symptoms"
    assert row["body_digest"] == body_digest(message.data)
    assert message.recipients == ("ok@example.com",)
    assert message.envelope_from == "hello@example.com"  # the campaign's From, without VERP


def test_a_bounce_stops_that_subscriber_and_a_policy_refusal_does_not(project: Path) -> None:
    subscribe(project, "gone@example.com", "policy@example.com")
    run_pass(project, Relay())
    db = sqlite3.connect(project / "dripline.db")
    people = dict(db.execute("SELECT email, status FROM subscribers"))
    later = set(
        db.execute(
            "SELECT s.email, d.status, d.last_error FROM deliveries d JOIN enrollments e "
            "ON e.id = d.enrollment_id JOIN subscribers s ON s.id = e.subscriber_id "
            "WHERE d.step > 1"
        )
    )
    db.close()
    assert people == {"gone@example.com": "bounced", "policy@example.com": "active"}
    assert later == {
        ("gone@example.com", "cancelled", "address bounced"),
        ("policy@example.com", "scheduled", None),
    }


def test_sending_the_last_step_completes_the_enrollment(project: Path) -> None:
    subscribe(project, "last@example.com", "first@example.com")
    db = sqlite3.connect(project / "dripline.db")
    with db:  # "last" has had steps 1-5; step 6 is due now
        db.execute(
            "UPDATE deliveries SET status = 'sent' WHERE step < 6 AND enrollment_id = "
            "(SELECT e.id FROM enrollments e JOIN subscribers s ON s.id = e.subscriber_id "
            "WHERE s.email = 'last@example.com')"
        )
        db.execute("UPDATE deliveries SET due_at = ? WHERE step = 6", (T0.replace(tzinfo=None),))
    report, _ = run_pass(project, Relay())
    enrolments = dict(
        db.execute(
            "SELECT s.email, e.status FROM enrollments e JOIN subscribers s "
            "ON s.id = e.subscriber_id"
        )
    )
    db.close()
    assert report.sent == 2
    assert enrolments == {"last@example.com": "completed", "first@example.com": "active"}


def test_an_outcome_for_a_row_taken_over_meanwhile_is_counted_and_said(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(project, "ok@example.com")

    class TakenOver(Relay):
        def _send(self, message: OutgoingMessage) -> SendResult:
            # Another worker found this one's lease dead and took the row over.
            db = sqlite3.connect(project / "dripline.db")
            with db:
                db.execute("UPDATE deliveries SET worker_id = 999 WHERE status = 'sending'")
            db.close()
            return super()._send(message)

    report, rows = run_pass(project, TakenOver())
    assert (report.sent, report.unrecorded) == (1, 1)
    row = rows["ok@example.com"]
    assert (row["status"], row["message_id"]) == ("sending", None)  # the new owner's to settle
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == (
        f"1 outcome(s) not recorded: this worker no longer held those deliveries "
        f"(its lease was taken over?): {row['id']}"
    )


def test_a_held_step_due_now_is_not_claimed_tried_or_failed(project: Path) -> None:
    subscribe(project, "ok@example.com")
    remove_step(project, "rapid-relief")  # step 1, due now
    relay = Relay()
    report, rows = run_pass(project, relay)
    row = rows["ok@example.com"]
    assert (row["status"], row["last_error"], row["attempts"]) == ("scheduled", None, 0)
    assert (report.claimed, report.held, relay.tried) == (0, ["ketamine-therapy/rapid-relief"], [])


def _scrape(metrics: RunMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples a Prometheus scrape of `dripline run --metrics-port` would read."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _metrics_pass(project: Path, metrics: RunMetrics, queue_class: type = SqlDeliveryQueue) -> None:
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    timetable = lambda slug: Timetable.of(library.campaign(slug))  # noqa: E731
    # A worker that claimed the first steps an hour ago and died: its lease has run out.
    then = datetime.now(UTC) - timedelta(hours=1)
    dead = SqlDeliveryQueue(engine, timetable, lease_seconds=60, clock=lambda: then)
    assert len(dead.claim_due(NOW, 100)) == 8
    queue = queue_class(engine, timetable)
    dispatcher = Dispatcher(
        queue,
        Relay(),
        library,
        unsubscribe_link_maker(settings),
        retry_policy=NO_JITTER,
        chunk_size=1,
        metrics=metrics,
    )  # type: ignore[arg-type]
    try:
        dispatcher.dispatch_due(NOW)
    finally:
        dispatcher.close()
        queue.close()
        engine.dispose()


_EVERY_ANSWER = ("ok", "defer", "policy", "gone", "lost", "busy", "dead", "down")


def test_sender_errors_are_counted_by_kind_and_the_queue_depth_is_published(
    project: Path,
) -> None:
    subscribe(project, *(f"{who}@example.com" for who in _EVERY_ANSWER))
    metrics = RunMetrics()
    _metrics_pass(project, metrics)
    samples = _scrape(metrics)

    errors = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "dripline_sender_errors_total"
    }
    # dripline_sender_errors_total{kind}: the five kinds the metrics page documents.
    assert errors == {
        "transient": 2,  # 451 greylisted, 421 busy
        "connection": 2,  # connection refused, no route to host
        "ambiguous": 1,  # lost after DATA
        "bounce": 1,  # 550 5.1.1
        "permanent": 1,  # 550 5.7.1 policy
    }
    depth = {
        labels[0][1]: value
        for (name, labels), value in samples.items()
        if name == "dripline_queue_depth"
    }
    # After the pass: 1 sent, 2 failed (bounce, policy), 1 ambiguous, the bounced
    # subscriber's 5 later steps cancelled; the deferred 4 are scheduled again beside the
    # later steps of the other 7. Every status is present, zeros included.
    assert depth == {
        "scheduled": 4 + 7 * 5,
        "claimed": 0,
        "sending": 0,
        "sent": 1,
        "failed": 2,
        "cancelled": 5,
        "ambiguous": 1,
        "skipped": 0,
    }
    assert samples[("dripline_lease_expiries_total", ())] == 1  # the dead worker's
    # One pass observed, its duration a real one (no longer than the clock has run).
    assert samples[("dripline_pass_duration_seconds_count", ())] == 1
    assert 0 < samples[("dripline_pass_duration_seconds_sum", ())] < time.monotonic()


class _DepthUnreadable(SqlDeliveryQueue):
    """A store whose status count fails (a dropped connection while it reads)."""

    def queue_depth(self) -> dict[str, int]:
        raise StoreError("the database went away while counting")


def test_a_queue_depth_that_cannot_be_read_is_a_warning_and_the_pass_still_sends(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(project, *(f"{who}@example.com" for who in _EVERY_ANSWER))
    metrics = RunMetrics()
    with caplog.at_level(logging.WARNING, logger="dripline.dispatch"):
        _metrics_pass(project, metrics, _DepthUnreadable)
    samples = _scrape(metrics)
    assert samples[("dripline_deliveries_total", (("outcome", "sent"),))] == 1
    assert samples[("dripline_lease_expiries_total", ())] == 1  # read before the depth
    assert not [k for k in samples if k[0] == "dripline_queue_depth"]
    assert "metrics: queue depth not read: the database went away while counting" in [
        r.getMessage() for r in caplog.records
    ]


def test_the_last_step_completes_the_enrollment_after_a_step_was_inserted_before_it(
    project: Path,
) -> None:
    # "last" has had steps 1-5; then a step is inserted at position 2 (unapplied: the
    # enrolled have no row for it). Their step 6 is now the campaign's 7th file, but still
    # its last step: sending it completes the enrollment.
    subscribe(project, "last@example.com")
    db = sqlite3.connect(project / "dripline.db")
    with db:
        db.execute("UPDATE deliveries SET status = 'sent' WHERE step < 6")
        db.execute("UPDATE deliveries SET due_at = ? WHERE step = 6", (T0.replace(tzinfo=None),))
    insert_step(
        project, 2, "new-insert", 'subject = "New"\npreheader = "New"\nday = 1', "New here."
    )
    report, _ = run_pass(project, Relay())
    (status,) = db.execute("SELECT status FROM enrollments").fetchone()
    db.close()
    assert (report.sent, status) == (1, "completed")


class _PooledRelay(Relay):
    """A relay sender with several connections, recording the batches it is handed."""

    parallelism = 3

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def send_many(self, messages, **options):  # type: ignore[no-untyped-def, override]
        self.batches.append(len(messages))
        return super().send_many(messages, **options)


def test_a_sender_with_several_connections_is_handed_a_chunk_for_each(project: Path) -> None:
    # 7 due, chunks of 2, three connections: 6 go out together (2 per connection), then 1.
    subscribe(project, *(f"p{n}@example.com" for n in range(7)))
    relay = _PooledRelay()
    report, rows = run_pass(project, relay, chunk_size=2)
    assert relay.batches == [6, 1]
    assert report.sent == 7 and {r["status"] for r in rows.values()} == {"sent"}


class _StoppedDuringClaim(SqlDeliveryQueue):
    """A claim during which `dripline run` gets SIGTERM (the stop event is set)."""

    stop: threading.Event

    def claim_due(self, now: datetime, limit: int) -> list:  # type: ignore[override]
        claimed = super().claim_due(now, limit)
        self.stop.set()
        return claimed


def test_a_stop_asked_while_claiming_hands_the_whole_claim_back_untried(project: Path) -> None:
    subscribe(project, "a@example.com", "b@example.com")
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    queue = _StoppedDuringClaim(engine, lambda slug: Timetable.of(library.campaign(slug)))
    stop = threading.Event()
    queue.stop = stop
    relay = Relay()
    dispatcher = Dispatcher(queue, relay, library, unsubscribe_link_maker(settings), stop=stop)
    try:
        report = dispatcher.dispatch_due(NOW)
        rows = first_steps(project)
    finally:
        dispatcher.close()
        queue.close()
        engine.dispose()
    assert relay.tried == []
    assert (report.sent, report.released) == (0, 2)
    # Scheduled again as they were, due now, the attempt given back.
    assert {(r["status"], r["attempts"], r["worker_id"]) for r in rows.values()} == {
        ("scheduled", 0, None)
    }


class _WithoutCounters:
    """A store with the queue's protocol but no ``lease_expiries`` or ``queue_depth`` (a
    store of another kind): the dispatcher's metrics must do without them."""

    def __init__(self, engine, timetable) -> None:  # type: ignore[no-untyped-def]
        self._inner = SqlDeliveryQueue(engine, timetable)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name in ("lease_expiries", "queue_depth"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_store_without_lease_or_depth_counts_publishes_neither_and_warns_nothing(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    subscribe(project, *(f"{who}@example.com" for who in _EVERY_ANSWER))
    metrics = RunMetrics()
    with caplog.at_level(logging.WARNING, logger="dripline.dispatch"):
        _metrics_pass(project, metrics, _WithoutCounters)
    samples = _scrape(metrics)
    assert samples[("dripline_deliveries_total", (("outcome", "sent"),))] == 1
    assert samples[("dripline_lease_expiries_total", ())] == 0  # none counted, none invented
    assert not [k for k in samples if k[0] == "dripline_queue_depth"]
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("metrics")] == []
