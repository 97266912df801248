"""A/B subjects (front matter ``subjects``): checked, split evenly, stable across workers."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from smtp_servers import FaultyHandler, RecordingHandler, running_server
from sqlite_support import table_dropped

from dripline.campaign import load_campaign
from dripline.cli import main
from dripline.errors import CampaignError
from dripline.experiments import choose_variant
from dripline.store import Decision, judge_experiment, make_engine, subject_key

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
STEP1 = "campaigns/ketamine-therapy/01-rapid-relief.md"
SUBJECT_LINE = 'subject = "Reason 1 of 6: Rapid relief from symptoms"'
VARIANTS = ("Rapid relief, variant A", "Rapid relief, variant B")


def set_subject_line(project: Path, line: str) -> None:
    path = project / STEP1
    path.write_text(path.read_text(encoding="utf-8").replace(SUBJECT_LINE, line))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f'{SUBJECT_LINE}\nsubjects = ["A", "B"]', "either subject or subjects"),
        ('subjects = ["Only one"]', "2 to 4 variants (it has 1)"),
        ('subjects = ["A", "B", "C", "D", "E"]', "2 to 4 variants (it has 5)"),
        ('subjects = ["A", ""]', "a list of strings"),
        ('subjects = ["A", "A"]', "the same"),
        ('subjects = ["Same", "Same "]', "the same (apart from white space)"),
        (
            'subjects = ["Hi {{ subscriber.first_name }}", "Hi {{subscriber.first_name}}"]',
            "the same (apart from white space)",
        ),
    ],
)
def test_bad_subjects_are_check_errors_with_file_and_line(project, line, message):
    set_subject_line(project, line)
    with pytest.raises(CampaignError) as caught:
        load_campaign(project / "campaigns" / "ketamine-therapy")
    assert message in caught.value.message
    assert caught.value.path.name == "01-rapid-relief.md"
    assert caught.value.line == line.count("\n") + 2  # the subjects line


def test_a_variant_with_a_template_error_is_reported_by_check(project):
    set_subject_line(project, 'subjects = ["Fine", "Broken {{ subscriber.first_name "]')
    checked = subprocess.run(
        [*DRIPLINE, "--root", str(project), "check", "ketamine-therapy"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 1
    assert "01-rapid-relief.md:2: error: subject variant 2:" in checked.stdout + checked.stderr


def test_the_choice_is_a_function_of_key_and_step_with_even_shares():
    keys = [f"key-{i}" for i in range(20_000)]
    first = [choose_variant(k, "rapid-relief", 2) for k in keys]
    assert first == [choose_variant(k, "rapid-relief", 2) for k in keys]  # stable
    assert 0.48 < sum(first) / len(first) < 0.52
    three = Counter(choose_variant(k, "rapid-relief", 3) for k in keys)
    assert all(0.31 < n / len(keys) < 0.35 for n in three.values())
    # Another step draws independently: not the same split.
    other = [choose_variant(k, "other-step", 2) for k in keys]
    assert 0.45 < sum(a == b for a, b in zip(first, other, strict=True)) / len(keys) < 0.55
    with pytest.raises(ValueError):
        choose_variant("k", "s", 0)


def split_setup(project: Path, people: int) -> Path:
    """An A/B step of two subjects and ``people`` subscribers to import (the CSV's path)."""
    set_subject_line(project, f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]')
    table = project / "people.csv"
    table.write_text(
        "email,timezone,subscribed_at\n"
        + "".join(f"r{i}@example.com,UTC,2026-03-05T12:00:00Z\n" for i in range(people))
    )
    return table


def step_one_rows(project: Path, columns: str) -> list[tuple]:
    """``columns`` of every step-1 delivery, with its subscriber (s) and delivery (d)."""
    with sqlite3.connect(project / "dripline.db") as db:
        return db.execute(
            f"SELECT {columns} FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id "
            "JOIN subscribers s ON s.id = e.subscriber_id WHERE d.step = 1"
        ).fetchall()


def subjects_by_recipient(handler: RecordingHandler) -> dict[str, str]:
    """The Subject of each message the relay received, by recipient (each received once)."""
    subject_of: dict[str, str] = {}
    for item in handler.received:
        message = email.message_from_bytes(item.data, policy=email.policy.default)
        assert item.rcpt_tos[0] not in subject_of, item.rcpt_tos  # nothing sent twice
        subject_of[item.rcpt_tos[0]] = str(message["Subject"])
    return subject_of


def run_env(project: Path, port: int) -> dict[str, str]:
    return {
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
        "DRIPLINE_SENDER": f"smtp://127.0.0.1:{port}?timeout=20",
    }


def test_two_thousand_subscribers_through_two_workers_split_evenly_and_consistently(project):
    people = split_setup(project, 2000)
    handler = RecordingHandler(pipelining=True)
    with running_server(handler) as server:
        env = {
            **os.environ,
            **run_env(project, server.port),
            "DRIPLINE_DATABASE_URL": f"sqlite:///{project / 'dripline.db'}",
        }
        imported = subprocess.run(
            [*DRIPLINE, "import", str(people), "--campaign", "ketamine-therapy"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert imported.returncode == 0, imported.stderr
        command = [*DRIPLINE, "run", "--once", "--now", "2026-03-05T12:00:30Z", "--batch", "50"]
        workers = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
        ]
        outputs = [w.communicate(timeout=300)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
    subject_of = subjects_by_recipient(handler)  # nothing sent twice
    assert len(subject_of) == 2000
    shares = Counter(subject_of.values())
    assert set(shares) == set(VARIANTS)
    assert all(0.45 <= n / 2000 <= 0.55 for n in shares.values()), shares
    rows = step_one_rows(project, "s.email, s.public_key, d.subject_variant, d.subject")
    assert len(rows) == 2000
    for address, key, variant, ledger_subject in rows:
        # Whichever worker sent it, the variant is the subscriber's own, and recorded.
        expected = choose_variant(key, "rapid-relief", 2)
        assert variant == expected + 1
        assert subject_of[address] == ledger_subject == VARIANTS[expected]
    # Both workers took part in the split.
    assert all("sent " in out and "sent 0," not in out for out in outputs), outputs


def test_a_worker_killed_mid_split_and_its_successor_keep_everyone_on_their_variant(project):
    # SIGKILL part-way through the pass; a new worker (after the dead one's lease ends)
    # sends the rest: every message still carries the subscriber's own variant, none twice.
    set_subject_line(project, f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]')
    people = project / "people.csv"
    people.write_text(
        "email,timezone,subscribed_at\n"
        + "".join(f"k{i}@example.com,UTC,2026-03-05T12:00:00Z\n" for i in range(600))
    )
    handler = RecordingHandler(pipelining=True)
    with running_server(handler) as server:
        env = {
            **os.environ,
            "DRIPLINE_ROOT": str(project),
            "DRIPLINE_DATABASE_URL": f"sqlite:///{project / 'dripline.db'}",
            "DRIPLINE_SECRET_KEY": "test-secret",
            "DRIPLINE_BASE_URL": "https://news.example.com",
            "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
            "DRIPLINE_SENDER": f"smtp://127.0.0.1:{server.port}?timeout=20",
        }
        subprocess.run(
            [*DRIPLINE, "import", str(people), "--campaign", "ketamine-therapy"],
            env=env,
            check=True,
            capture_output=True,
        )
        command = [*DRIPLINE, "run", "--once", "--now", "2026-03-05T12:00:30Z", "--batch", "20"]
        first = subprocess.Popen([*command, "--lease", "1"], env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(handler.received) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert 0 < len(handler.received) < 600, "the kill came too late to test anything"
        time.sleep(1.5)  # the dead worker's one-second lease runs out
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stdout + second.stderr
    with sqlite3.connect(project / "dripline.db") as db:
        rows = db.execute(
            "SELECT s.email, s.public_key, d.status, d.subject_variant FROM deliveries d "
            "JOIN enrollments e ON e.id = d.enrollment_id "
            "JOIN subscribers s ON s.id = e.subscriber_id WHERE d.step = 1"
        ).fetchall()
    key_of = {address: key for address, key, _, _ in rows}
    statuses = Counter(status for _, _, status, _ in rows)
    assert statuses["sent"] + statuses["ambiguous"] == 600, statuses
    received = Counter(item.rcpt_tos[0] for item in handler.received)
    assert max(received.values()) == 1  # ambiguous rows are not retried automatically
    for item in handler.received:
        message = email.message_from_bytes(item.data, policy=email.policy.default)
        expected = choose_variant(key_of[item.rcpt_tos[0]], "rapid-relief", 2)
        assert str(message["Subject"]) == VARIANTS[expected]
    for _, key, status, variant in rows:
        if status == "sent":
            assert variant == choose_variant(key, "rapid-relief", 2) + 1


def test_history_shows_the_recorded_variant_and_timeline_each_persons_own(project):
    # Probe LOW 5: the ledger's variant in `history`, and a scheduled A/B step in
    # `timeline` with the subject this person will get, not always variant 1.
    set_subject_line(project, f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]')
    step2 = project / "campaigns/ketamine-therapy/02-treatment-resistant.md"
    text = step2.read_text(encoding="utf-8")
    (line,) = [x for x in text.splitlines() if x.startswith("subject = ")]
    step2.write_text(text.replace(line, 'subjects = ["Second, red", "Second, green"]'))
    people = project / "people.csv"
    people.write_text(
        "email,timezone,subscribed_at\n"
        + "".join(f"t{i}@example.com,UTC,2026-03-05T12:00:00Z\n" for i in range(12))
    )
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_DATABASE_URL": f"sqlite:///{project / 'dripline.db'}",
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }

    def dripline(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*DRIPLINE, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    dripline("import", str(people), "--campaign", "ketamine-therapy")
    with running_server(RecordingHandler()) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        dripline("run", "--once", "--now", "2026-03-05T12:00:30Z")
    with sqlite3.connect(project / "dripline.db") as db:
        keys = dict(db.execute("SELECT email, public_key FROM subscribers").fetchall())
    seen = set()
    for address, key in keys.items():
        (sent,) = json.loads(dripline("history", address, "--json").stdout)
        first = choose_variant(key, "rapid-relief", 2)
        assert sent["subject_variant"] == first + 1 and sent["subject"] == VARIANTS[first]
        rows = json.loads(
            dripline("timeline", "ketamine-therapy", "--email", address, "--json").stdout
        )
        second = choose_variant(key, "treatment-resistant", 2)
        assert rows[1]["status"] == "scheduled"
        assert rows[1]["subject"] == ("Second, red", "Second, green")[second]
        seen.add(second)
    assert seen == {0, 1}  # both variants shown, each to its own people
    table = dripline("history", next(iter(keys)), "--db", str(project / "dripline.db")).stdout
    assert "variant" in table


def test_an_ambiguous_ab_send_records_its_subject_and_a_requeue_resends_that_one(project):
    """probe-18b MEDIUM 2: the relay cuts the connection after the data of one A/B message
    (ambiguous). The row already says which variant and subject may have arrived (history,
    timeline); after a winner of the OTHER variant, `requeue --ambiguous` and a new pass
    re-send the SAME subject, and the ledger keeps it."""
    set_subject_line(project, f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]')
    people = project / "people.csv"
    people.write_text(
        "email,timezone,subscribed_at\n"
        + "drop-in-data@example.com,UTC,2026-03-05T12:00:00Z\n"
        + "".join(f"q{i}@example.com,UTC,2026-03-05T12:00:00Z\n" for i in range(6))
    )
    url = f"sqlite:///{project / 'dripline.db'}"
    env = {
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_DATABASE_URL": url,
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }

    def dripline(*args: str) -> Result:
        # In process, so that mutation testing sees these passes reach the dispatcher.
        done = CliRunner(env=env).invoke(main, list(args))
        assert done.exit_code == 0, done.output
        return done

    dripline("import", str(people), "--campaign", "ketamine-therapy")
    faulty = FaultyHandler()
    with running_server(faulty) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        dripline("run", "--once", "--now", "2026-03-05T12:00:30Z")
    (arrived,) = [
        email.message_from_bytes(r.data, policy=email.policy.default)
        for r in faulty.received
        if r.rcpt_tos == ("drop-in-data@example.com",)
    ]
    maybe = str(arrived["Subject"])  # what the relay has, though dripline cannot know it
    number = VARIANTS.index(maybe) + 1
    query = (
        "SELECT d.status, d.subject_variant, d.subject_key, d.subject FROM deliveries d "
        "JOIN enrollments e ON e.id = d.enrollment_id JOIN subscribers s "
        "ON s.id = e.subscriber_id WHERE s.email = 'drop-in-data@example.com' AND d.step = 1"
    )
    with sqlite3.connect(project / "dripline.db") as db:
        row = db.execute(query).fetchone()
    assert row == ("ambiguous", number, subject_key(maybe), maybe)
    (shown,) = json.loads(dripline("history", "drop-in-data@example.com", "--json").stdout)
    assert (shown["status"], shown["subject_variant"], shown["subject"]) == (
        "ambiguous",
        number,
        maybe,
    )
    timeline = json.loads(
        dripline(
            "timeline", "ketamine-therapy", "--email", "drop-in-data@example.com", "--json"
        ).stdout
    )
    assert (timeline[0]["status"], timeline[0]["subject"]) == ("ambiguous", maybe)
    # The other subject wins; the ambiguous person is sent theirs again, not the winner.
    engine = make_engine(url)
    try:
        judge_experiment(
            engine,
            "ketamine-therapy",
            "rapid-relief",
            list(VARIANTS),
            decide=lambda tallies: Decision(3 - number, 4.0, 0.0001),
            now=datetime(2026, 3, 5, 13, tzinfo=UTC),
        )
    finally:
        engine.dispose()
    dripline("requeue", "--ambiguous", "ketamine-therapy")
    again = RecordingHandler()
    with running_server(again) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        dripline("run", "--once")  # requeued rows are due now (the wall clock)
    step1 = [
        str(message["Subject"])
        for message in (
            email.message_from_bytes(r.data, policy=email.policy.default) for r in again.received
        )
        if str(message["To"]) == "drop-in-data@example.com" and message["Subject"] in VARIANTS
    ]
    assert step1 == [maybe]  # their own subject once more, never the winner as well
    with sqlite3.connect(project / "dripline.db") as db:
        assert db.execute(query).fetchone() == ("sent", number, subject_key(maybe), maybe)


def test_a_stored_winner_outlives_its_config_and_the_report_says_when_the_split_resumed(
    project,
):
    """probe-18b MEDIUM 6, MEDIUM 1, LOW 6 through real `dripline run` passes: a winner is
    stored; with no [experiment] table (nor click tracking) any more, later people still
    all get it; with the winner's text edited out, the split resumes and the report says so
    (the winner shown by the text it was decided on, the old text's sends apart); with the
    step back to one `subject`, the report still shows each variant by its text."""
    set_subject_line(project, f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]')
    url = f"sqlite:///{project / 'dripline.db'}"
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_DATABASE_URL": url,
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }

    def dripline(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*DRIPLINE, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def wave(name: str, day: int, handler: RecordingHandler) -> Counter:
        people = project / f"{name}.csv"
        people.write_text(
            "email,timezone,subscribed_at\n"
            + "".join(f"{name}{i}@example.com,UTC,2026-03-{day:02d}T12:00:00Z\n" for i in range(16))
        )
        dripline("import", str(people), "--campaign", "ketamine-therapy")
        before = len(handler.received)
        dripline("run", "--once", "--now", f"2026-03-{day:02d}T12:00:30Z")
        got = [
            email.message_from_bytes(r.data, policy=email.policy.default)
            for r in handler.received[before:]
        ]
        return Counter(str(m["Subject"]) for m in got if str(m["To"]).startswith(name))

    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        first = wave("w", 2, handler)
        assert set(first) == set(VARIANTS)
        engine = make_engine(url)
        try:  # decided (by the store's judge) for B, then the [experiment] table is gone
            judge_experiment(
                engine,
                "ketamine-therapy",
                "rapid-relief",
                list(VARIANTS),
                decide=lambda tallies: Decision(2, 4.0, 0.0001),
                now=datetime(2026, 3, 3, 12, tzinfo=UTC),
            )
        finally:
            engine.dispose()
        assert wave("x", 4, handler) == {VARIANTS[1]: 16}
        report = json.loads(dripline("report", "ketamine-therapy", "--json").stdout)
        experiment = report["steps"][0]["experiment"]
        assert not experiment["split_resumed"] and experiment["winner"]["in_step"]
        by_text = {v["subject"]: v for v in experiment["variants"]}
        assert by_text[VARIANTS[1]]["since_winner"]["sent"] == 16
        # The winner's text edited: the split resumes, and the report says so.
        edited = "Rapid relief, variant B (reworded)"
        step = project / STEP1
        step.write_text(step.read_text().replace(f'"{VARIANTS[1]}"', f'"{edited}"'))
        third = wave("y", 6, handler)
        assert set(third) == {VARIANTS[0], edited}
        report = json.loads(dripline("report", "ketamine-therapy", "--json").stdout)
        experiment = report["steps"][0]["experiment"]
        assert experiment["split_resumed"] and not experiment["winner"]["in_step"]
        assert experiment["winner"]["subject"] == VARIANTS[1]
        rows = {v["subject"]: v for v in experiment["variants"]}
        assert rows[edited]["current"] and rows[edited]["sent"] == third[edited]
        old = rows[VARIANTS[1]]  # its sends kept apart, under the text they went out with
        assert not old["current"] and old["sent"] == first[VARIANTS[1]] + 16
        text = dripline("report", "ketamine-therapy").stdout
        assert "the winner's text is no longer among the step's subjects: the split resumed" in text
        assert f"{VARIANTS[1]!r} (no longer in the step)" in text
        # Back to one subject: the variants are still shown by the text they were sent with.
        step.write_text(
            step.read_text().replace(
                f'subjects = ["{VARIANTS[0]}", "{edited}"]', 'subject = "Rapid relief"'
            )
        )
        report = json.loads(dripline("report", "ketamine-therapy", "--json").stdout)
        subjects = {v["subject"] for v in report["steps"][0]["experiment"]["variants"]}
        assert subjects == {VARIANTS[0], VARIANTS[1], edited}
        text = dripline("report", "ketamine-therapy").stdout
        assert "None" not in text
        # probe-18c LOW c: the test is over, said once, not "no longer in the step" per row.
        assert "the A/B test ended: the step has one subject now" in text
        assert "(no longer in the step)" not in text and "no winner yet" not in text


class RowWatchingHandler(RecordingHandler):
    """Notes, as each message arrives, what its step-1 row says at that moment."""

    def __init__(self, database: Path) -> None:
        super().__init__(pipelining=True)
        self.database = database
        self.rows_in_flight: dict[str, tuple] = {}

    async def handle_DATA(self, server, session, envelope) -> str:
        with sqlite3.connect(self.database) as db:
            self.rows_in_flight[envelope.rcpt_tos[0]] = db.execute(
                "SELECT d.status, d.subject_variant, d.subject FROM deliveries d "
                "JOIN enrollments e ON e.id = d.enrollment_id JOIN subscribers s "
                "ON s.id = e.subscriber_id WHERE s.email = ? AND d.step = 1",
                (envelope.rcpt_tos[0],),
            ).fetchone()
        return await super().handle_DATA(server, session, envelope)


def test_each_sent_row_records_the_variant_its_subscriber_was_sent_in_process(project):
    """The same split as above in one in-process pass: the 'sent' outcome keeps the variant
    the 'sending' step recorded, for every row. And while each message is with the relay,
    its row already says which variant and subject it carries: a crash then leaves that
    known, and `requeue` re-sends the same."""
    people = split_setup(project, 12)
    handler = RowWatchingHandler(project / "dripline.db")
    with running_server(handler) as server:
        runner = CliRunner(env=run_env(project, server.port))
        for args in (
            ["import", str(people), "--campaign", "ketamine-therapy"],
            ["run", "--once", "--now", "2026-03-05T12:00:30Z"],
        ):
            result = runner.invoke(main, args)
            assert result.exit_code == 0, result.output
    subject_of = subjects_by_recipient(handler)
    rows = step_one_rows(project, "s.email, s.public_key, d.status, d.subject_variant")
    assert len(rows) == 12 and {row[2] for row in rows} == {"sent"}
    for address, key, _, variant in rows:
        expected = choose_variant(key, "rapid-relief", 2)
        assert variant == expected + 1 and subject_of[address] == VARIANTS[expected]
        in_flight = ("sending", expected + 1, VARIANTS[expected])
        assert handler.rows_in_flight[address] == in_flight


def test_an_unreadable_ab_decision_defers_the_step_and_a_later_pass_sends_it(project):
    """The A/B decision cannot be read (here its table is gone, as when the database is
    away): not the subscribers' fault, so every A/B message of the pass goes back to the
    queue at the first back-off time with the reason, nothing is sent, nothing fails; once
    the table is back, the next pass sends each person their own variant."""
    people = split_setup(project, 3)
    handler = RecordingHandler(pipelining=True)
    with running_server(handler) as server:
        runner = CliRunner(env=run_env(project, server.port))
        result = runner.invoke(main, ["import", str(people), "--campaign", "ketamine-therapy"])
        assert result.exit_code == 0, result.output
        with table_dropped(project / "dripline.db", "experiment_winners"):
            result = runner.invoke(main, ["run", "--once", "--now", "2026-03-05T12:00:30Z"])
        assert result.exit_code == 0, result.output
        assert handler.received == []
        rows = step_one_rows(project, "d.status, d.due_at, d.attempts, d.last_error")
        assert len(rows) == 3
        for status, due_at, attempts, error in rows:
            assert status == "scheduled"
            # The first back-off: 5 minutes from the pass, plus up to 10% jitter.
            assert "2026-03-05 12:05:30" <= due_at <= "2026-03-05 12:06:00"
            assert attempts == 0  # not a send attempt: the deadline has not started
            assert error.startswith("A/B winner: ") and "experiment_winners" in error
        result = runner.invoke(main, ["run", "--once", "--now", "2026-03-05T12:06:00Z"])
        assert result.exit_code == 0, result.output
    rows = step_one_rows(project, "s.email, s.public_key, d.status, d.subject_variant")
    assert {row[2] for row in rows} == {"sent"}
    subject_of = subjects_by_recipient(handler)
    assert len(handler.received) == 3
    for address, key, _, variant in rows:
        expected = choose_variant(key, "rapid-relief", 2)
        assert variant == expected + 1 and subject_of[address] == VARIANTS[expected]
