"""A dispatch pass never strands what it claimed, whatever goes wrong in the middle."""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline.cli import main
from dripline.dispatch import CampaignLibrary, Dispatcher
from dripline.runtime import unsubscribe_link_maker
from dripline.settings import Settings
from dripline.store import SqlDeliveryQueue, open_store
from dripline.timetable import Timetable
from sender import OutgoingMessage, PermanentSendError, SendResult, TransientSendError
from sender.memory import MemorySender

T0 = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)


class FlakyPlugin(MemorySender):
    """A third-party sender with a bug: its second message raises a plain exception."""

    calls = 0

    def _send(self, message: OutgoingMessage) -> SendResult:
        FlakyPlugin.calls += 1
        if FlakyPlugin.calls == 2:
            raise ConnectionResetError("peer went away")
        return super()._send(message)


def subscribe(project: Path, address: str, at: datetime, **extra: str) -> None:
    args = [
        "--root",
        str(project),
        "subscribe",
        address,
        "--campaign",
        "ketamine-therapy",
        "--tz",
        "America/Los_Angeles",
        "--at",
        at.isoformat(),
    ]
    for key, value in extra.items():
        args += [f"--{key}", value]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


def statuses(project: Path) -> Counter[str]:
    db = sqlite3.connect(project / "dripline.db")
    found = Counter(
        dict(db.execute("SELECT status, count(*) FROM deliveries WHERE step = 1 GROUP BY status"))
    )
    db.close()
    return found


def dispatcher(
    project: Path, sender, batch_size: int = 500, wrap_links=None
) -> tuple[Dispatcher, object]:
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    queue = SqlDeliveryQueue(engine, lambda slug: Timetable.of(library.campaign(slug)))
    links = unsubscribe_link_maker(settings)
    if wrap_links is not None:
        links = wrap_links(links)
    return Dispatcher(queue, sender, library, links, batch_size=batch_size), engine


def test_a_plugin_exception_fails_only_its_message(project: Path):
    for n in range(4):
        subscribe(project, f"p{n}@example.com", T0)
    FlakyPlugin.calls = 0
    MemorySender.clear("flaky")
    run, engine = dispatcher(project, FlakyPlugin("flaky"))
    report = run.dispatch_due(T0 + timedelta(minutes=1))
    engine.dispose()
    assert report.sent == 3 and report.ambiguous == 1, report.summary()
    assert len(MemorySender.outbox("flaky")) == 3
    # The one that raised may have gone out: recorded as ambiguous, never re-sent.
    assert statuses(project) == Counter({"sent": 3, "ambiguous": 1})


def test_a_template_error_on_one_subscriber_fails_only_that_delivery(
    project: Path, caplog: pytest.LogCaptureFixture
):
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    # Passes `dripline check` for a sample without a name, but a name is text and
    # "text - 1" raises TypeError (not a template error) for those who have one.
    step.write_text(step.read_text() + "\nScore: {{ subscriber.name | default(0) - 1 }}\n")
    subscribe(project, "named@example.com", T0, name="Alexandra Long")
    subscribe(project, "named2@example.com", T0, name="Bo Short")
    subscribe(project, "anon1@example.com", T0)
    subscribe(project, "anon2@example.com", T0)
    MemorySender.clear("tpl")
    run, engine = dispatcher(project, MemorySender("tpl"))
    with caplog.at_level(logging.WARNING):
        report = run.dispatch_due(T0 + timedelta(minutes=1))
    engine.dispose()
    assert report.sent == 2 and report.failed == 2, report.summary()
    assert statuses(project) == Counter({"sent": 2, "failed": 2})
    db = sqlite3.connect(project / "dripline.db")
    found = db.execute("SELECT id, last_error FROM deliveries WHERE status = 'failed' ORDER BY id")
    ((failed, error), _) = found.fetchall()
    db.close()
    # What `dripline status` shows: the file, the line that fails and the error, as the
    # renderer words it.
    line = step.read_text().splitlines().index("Score: {{ subscriber.name | default(0) - 1 }}")
    assert error == (
        f"render: {step}:{line + 1}: cannot render: TypeError: unsupported operand type(s) "
        "for -: 'str' and 'int'"
    )
    # The report and the log both name the delivery that failed, so it can be found.
    assert report.errors[0] == f"delivery {failed}: {error.removeprefix('render: ')}"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"delivery {failed} not rendered: {error.removeprefix('render: ')}" in logged


def test_an_unexpected_error_for_one_subscriber_fails_only_that_delivery_named_by_type(
    project: Path, caplog: pytest.LogCaptureFixture
):
    """A fault that is not dripline's own (here the unsubscribe link maker raising for one
    subscriber, as a bug would) fails that delivery only, with the exception's type."""

    def failing_for_odd(links):
        def link(delivery):
            if delivery.email == "odd@example.com":
                raise ValueError("no link for this one")
            return links(delivery)

        return link

    for address in ("a@example.com", "odd@example.com", "b@example.com"):
        subscribe(project, address, T0)
    MemorySender.clear("odd")
    run, engine = dispatcher(project, MemorySender("odd"), wrap_links=failing_for_odd)
    with caplog.at_level(logging.WARNING):
        report = run.dispatch_due(T0 + timedelta(minutes=1))
    engine.dispose()
    assert report.sent == 2 and report.failed == 1, report.summary()
    assert sorted(m.recipients[0] for m in MemorySender.outbox("odd")) == [
        "a@example.com",
        "b@example.com",
    ]
    db = sqlite3.connect(project / "dripline.db")
    ((failed, error),) = db.execute("SELECT id, last_error FROM deliveries WHERE status = 'failed'")
    db.close()
    assert error == "render: ValueError: no link for this one"
    assert report.errors == [f"delivery {failed}: ValueError: no link for this one"]


def test_one_pass_reaches_everyone_due_even_after_an_outage(project: Path):
    for n in range(3):  # long overdue: every step is due, only the earliest is claimed
        subscribe(project, f"old{n}@example.com", T0 - timedelta(days=30))
    for n in range(3):
        subscribe(project, f"new{n}@example.com", T0)
    MemorySender.clear("outage")
    run, engine = dispatcher(project, MemorySender("outage"), batch_size=6)
    report = run.dispatch_due(T0 + timedelta(minutes=1))
    engine.dispose()
    recipients = sorted(m.recipients[0] for m in MemorySender.outbox("outage"))
    assert recipients == sorted(
        [f"old{n}@example.com" for n in range(3)] + [f"new{n}@example.com" for n in range(3)]
    ), report.summary()


def test_a_running_dispatcher_sends_the_campaign_as_edited_now(project: Path):
    subscribe(project, "reader@example.com", T0)
    MemorySender.clear("edits")
    run, engine = dispatcher(project, MemorySender("edits"))
    run.dispatch_due(T0 + timedelta(minutes=1))
    step = project / "campaigns/ketamine-therapy/02-treatment-resistant.md"
    step.write_text(step.read_text().replace("Reason 2 of 6: High", "Reason 2 of 6: Very high"))
    run.dispatch_due(datetime(2026, 3, 9, 17, 0, tzinfo=UTC))  # step 2 is due
    engine.dispose()
    subjects = [
        m.data.split(b"\r\nSubject: ")[1].split(b"\r\n")[0] for m in MemorySender.outbox("edits")
    ]
    assert subjects[1].startswith(b"Reason 2 of 6: Very high efficacy")


def test_a_broken_campaign_edit_defers_instead_of_failing(project: Path):
    subscribe(project, "reader@example.com", T0)
    toml = project / "campaigns/ketamine-therapy/campaign.toml"
    good = toml.read_text()
    toml.write_text(good.replace('timezone = "America/Los_Angeles"', 'timezone = "Nowhere/X"'))
    MemorySender.clear("broken")
    run, engine = dispatcher(project, MemorySender("broken"))
    report = run.dispatch_due(T0 + timedelta(minutes=1))
    assert report.deferred == 1 and report.failed == 0, report.summary()
    assert "unknown time zone" in report.errors[0]
    assert statuses(project) == Counter({"scheduled": 1})
    first = step_one_due(project) - (T0 + timedelta(minutes=1))
    assert timedelta(minutes=5) <= first <= timedelta(minutes=5.5)  # 5 minutes + jitter
    # Still broken at the retry: the deferral counted as an attempt, so the back-off grows
    # instead of coming back every 5 minutes for as long as the file stays broken.
    again = T0 + timedelta(minutes=1) + first
    report = run.dispatch_due(again)
    assert report.deferred == 1, report.summary()
    grown = step_one_due(project) - again
    assert timedelta(minutes=10) <= grown <= timedelta(minutes=11)
    toml.write_text(good)  # fixed: the retry goes out
    report = run.dispatch_due(again + grown)
    engine.dispose()
    assert report.sent == 1, report.summary()
    assert len(MemorySender.outbox("broken")) == 1


def step_one_due(project: Path) -> datetime:
    db = sqlite3.connect(project / "dripline.db")
    ((due,),) = db.execute("SELECT due_at FROM deliveries WHERE step = 1")
    db.close()
    return datetime.fromisoformat(due).replace(tzinfo=UTC)


class EditedMidPass(SqlDeliveryQueue):
    """The real queue; the operator's edit lands right after a claim (mid-pass)."""

    edit: object = None

    def claim_due(self, now: datetime, limit: int):
        claimed = super().claim_due(now, limit)
        if claimed and self.edit is not None:
            edit, self.edit = self.edit, None
            edit()
        return claimed


def test_a_step_removed_while_a_pass_runs_is_deferred_with_its_name(project: Path):
    """The campaign was broken when the pass began (so not loaded), and the edit that
    fixes it also removes step 1 while the pass has its delivery claimed."""
    subscribe(project, "reader@example.com", T0)
    db = sqlite3.connect(project / "dripline.db")
    ((delivery_id, step_id),) = db.execute("SELECT id, step_id FROM deliveries WHERE step = 1")
    db.close()
    toml = project / "campaigns/ketamine-therapy/campaign.toml"
    good = toml.read_text()
    toml.write_text(good.replace('timezone = "America/Los_Angeles"', 'timezone = "Nowhere/X"'))

    def finish_the_edit() -> None:
        toml.write_text(good)
        (project / "campaigns/ketamine-therapy/01-rapid-relief.md").unlink()

    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    queue = EditedMidPass(engine, lambda slug: Timetable.of(library.campaign(slug)))
    queue.edit = finish_the_edit
    MemorySender.clear("removed")
    run = Dispatcher(queue, MemorySender("removed"), library, unsubscribe_link_maker(settings))
    report = run.dispatch_due(T0 + timedelta(minutes=1))
    engine.dispose()
    assert (report.sent, report.deferred, report.failed) == (0, 1, 0), report.summary()
    assert report.errors == [
        f"delivery {delivery_id}: step {step_id!r} is no longer in campaign 'ketamine-therapy'"
    ]
    assert statuses(project) == Counter({"scheduled": 1})
    db = sqlite3.connect(project / "dripline.db")
    (error,) = db.execute("SELECT last_error FROM deliveries WHERE id = ?", (delivery_id,))
    db.close()
    assert error == (f"campaign: step {step_id!r} is no longer in campaign 'ketamine-therapy'",)
    assert MemorySender.outbox("removed") == []


def test_a_dispatcher_without_tracking_links_sends_a_tracked_campaign_untracked(project: Path):
    """A dispatcher built without signed tracking URLs (a library user's, a test's) sends a
    campaign that asks for tracking with its links as written, rather than failing it."""
    toml = project / "campaigns/ketamine-therapy/campaign.toml"
    toml.write_text(toml.read_text() + "\n[tracking]\nclicks = true\nopens = true\n")
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    step.write_text(step.read_text() + "\n[Book a call](https://clinic.example.com/book)\n")
    subscribe(project, "reader@example.com", T0)
    MemorySender.clear("untracked")
    run, engine = dispatcher(project, MemorySender("untracked"))
    report = run.dispatch_due(T0 + timedelta(minutes=1))
    engine.dispose()
    assert report.sent == 1, report.summary()
    (message,) = MemorySender.outbox("untracked")
    body = message.data.decode("utf-8", "replace").replace("=\r\n", "")
    assert "https://clinic.example.com/book" in body and "/c/" not in body


class RefusingPlugin(MemorySender):
    """Refuses by the recipient's local part: a dead mailbox, a policy refusal, a lost reply."""

    def _send(self, message: OutgoingMessage) -> SendResult:
        local = message.recipients[0].split("@")[0].rstrip("0123456789")
        if local == "dead":
            raise PermanentSendError("550 5.1.1 no such user", code=550, bounce=True)
        if local == "policy":
            raise PermanentSendError("550 5.7.1 refused by policy", code=550)
        if local == "lost":
            raise TransientSendError("connection lost after the data", ambiguous=True)
        return super()._send(message)


def test_a_pass_counts_every_refusal_of_each_kind(project: Path):
    for name in ("dead1", "dead2", "policy1", "policy2", "lost1", "lost2", "ok1"):
        subscribe(project, f"{name}@example.com", T0)
    MemorySender.clear("refusing")
    run, engine = dispatcher(project, RefusingPlugin("refusing"))
    report = run.dispatch_due(T0 + timedelta(minutes=1))
    engine.dispose()
    counts = (report.sent, report.bounced, report.failed, report.ambiguous)
    assert counts == (1, 2, 2, 2), report.summary()
    assert statuses(project) == Counter({"sent": 1, "failed": 4, "ambiguous": 2})


def test_every_batch_of_a_pass_is_counted_and_a_step_deferred_for_many_is_one_line(
    project: Path,
):
    """A pass over several claims (batches of 2) counts every claimed delivery; a step
    whose `when` fails for each subscriber (a missing attribute) is deferred for each and
    reported once, with how many and the first reason."""
    for n in range(5):
        subscribe(project, f"b{n}@example.com", T0)
    MemorySender.clear("batches")
    run, engine = dispatcher(project, MemorySender("batches"), batch_size=2)
    report = run.dispatch_due(T0 + timedelta(minutes=1))
    assert (report.claimed, report.sent) == (5, 5), report.summary()
    assert report.errors == []
    # Step 2 gains a `when` on an attribute nobody has: each of the 5 is deferred.
    step = project / "campaigns/ketamine-therapy/02-treatment-resistant.md"
    step.write_text(
        step.read_text().replace("+++\n", '+++\nwhen = "subscriber.plan.tier > 1"\n', 1)
    )
    report = run.dispatch_due(T0 + timedelta(days=30))
    engine.dispose()
    assert (report.claimed, report.deferred, report.sent) == (5, 5, 0), report.summary()
    (line,) = report.errors
    first = line.split("the first ", 1)[1]
    assert line == (
        "campaign ketamine-therapy, step 'treatment-resistant': 5 deliveries deferred "
        f"(retried with growing back-off), the first {first}"
    )
    db = sqlite3.connect(project / "dripline.db")
    ((earliest,),) = db.execute("SELECT min(id) FROM deliveries WHERE step = 2")
    db.close()
    # The first in claim order (all due at once: by id).
    assert first.startswith(f"delivery {earliest}: {step}:2: when 'subscriber.plan.tier > 1' ")
