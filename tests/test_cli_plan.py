"""Editing a live campaign, end to end: real `dripline` processes, a Maildir, SQLite and PostgreSQL.

The issue's scenario: two subscribers mid-sequence, an email inserted as step 2 with the
later files renumbered, then `plan`, `apply`, and every remaining pass.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from edit_support import (
    DRIPLINE,
    REASONS,
    SLUG,
    dripline,
    dripline_json,
    edit_step,
    git_commit,
    insert_step,
    mailbox,
    project_env,
    reasons,
    remove_step,
    subjects_for,
)
from sqlalchemy import text

from dripline.store import Decision, judge_experiment, make_engine

NEW_SUBJECT = "A new email inserted as step 2"
P = True  # the scenario runs every command as a real `dripline` process
# Weekdays of March 2026 at 18:00 UTC (10:00 in Los Angeles), after each 09:00 send time.
PASSES = [f"2026-03-{day:02d}T18:00:00Z" for day in (5, 6, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20)]


@pytest.fixture
def env(project: Path, db_url: str) -> dict[str, str]:
    return project_env(project, db_url)


def subscribe(env: dict[str, str], address: str, at: str, process: bool = False) -> None:
    dripline(
        env,
        *("subscribe", address, "--campaign", SLUG, "--tz", "America/Los_Angeles", "--at", at),
        process=process,
    )


def run_pass(env: dict[str, str], now: str, process: bool = False) -> str:
    done = dripline(env, "run", "--once", "--now", now, process=process)
    return done.stdout + done.stderr


def test_insert_and_renumber_then_plan_and_apply(project: Path, env: dict[str, str]):
    first_commit = git_commit(project, "campaign as launched")
    subscribe(env, "ahead@example.com", "2026-03-02T08:00", P)  # Monday
    subscribe(env, "behind@example.com", "2026-03-03T08:00", P)  # Tuesday
    run_pass(env, "2026-03-02T16:01:00Z", P)  # ahead: step 1
    run_pass(env, "2026-03-03T16:01:00Z", P)  # behind: step 1
    run_pass(env, "2026-03-04T17:30:00Z", P)  # ahead: step 2 ("Reason 2")
    assert reasons(subjects_for(project, "ahead@")) == REASONS[:2]
    assert reasons(subjects_for(project, "behind@")) == REASONS[:1]

    insert_step(
        project,
        2,
        "new-insert",
        f'subject = "{NEW_SUBJECT}"\npreheader = "Something new"\nday = 1',
        "Hello {{ subscriber.first_name | default('there') }}, this one is new.",
    )
    assert "ok" in dripline(env, "check", SLUG, process=P).stdout

    # Unapplied, nothing is lost or repeated: the timeline still names what was sent.
    timeline = dripline_json(env, "timeline", SLUG, "--email", "ahead@example.com", process=P)
    assert [(r["id"], r["status"]) for r in timeline[:2]] == [
        ("rapid-relief", "sent"),
        ("treatment-resistant", "sent"),
    ]
    assert timeline[1]["subject"].startswith("Reason 2 of 6")
    assert len(timeline) == 6 and "new-insert" not in [r["id"] for r in timeline]

    now = "2026-03-04T18:00:00Z"
    (plan,) = dripline_json(env, "plan", SLUG, "--now", now, process=P)
    assert [a["step"] for a in plan["added"]] == ["new-insert"]
    assert plan["added"][0]["enrollments"] == 1  # behind: its position is still ahead of them
    assert plan["added"][0]["already_past"] == 1  # ahead: already past it
    assert plan["removed"] == []
    assert plan["retimed"] == []  # renumbering is not a move
    dripline(env, "plan", SLUG, "--exit-code", "--now", now, ok=(2,), process=P)

    applied = dripline(env, "apply", SLUG, "--yes", "--now", now, process=P).stdout
    assert "applied" in applied
    assert (
        "no changes" in dripline(env, "plan", SLUG, "--exit-code", "--now", now, process=P).stdout
    )

    for moment in PASSES:
        run_pass(env, moment, P)

    ahead = subjects_for(project, "ahead@")
    behind = subjects_for(project, "behind@")
    assert reasons(ahead) == REASONS and NEW_SUBJECT not in ahead
    assert reasons(behind) == REASONS
    assert behind.index(NEW_SUBJECT) == 1  # between Reason 1 and Reason 2
    assert len(behind) == 7 and len(ahead) == 6

    # The timeline shows what was actually sent (the ledger), in the new order.
    timeline = dripline_json(env, "timeline", SLUG, "--email", "behind@example.com", process=P)
    assert [r["id"] for r in timeline][:3] == ["rapid-relief", "new-insert", "treatment-resistant"]
    sent_subjects = [r["subject"] for r in timeline if r["status"] == "sent"]
    assert sent_subjects == behind

    history = dripline_json(env, "history", "ahead@example.com", process=P)
    assert [h["subject"] for h in history] == ahead
    assert all(len(h["body_digest"]) == 64 for h in history)
    # Sent before the edit: the launch commit; after it: that commit, marked dirty.
    assert history[0]["campaign_commit"] == first_commit
    assert history[-1]["campaign_commit"] == f"{first_commit}-dirty"
    # The ledger's subject is the one in the mailbox, not today's file.
    digests = {h["body_digest"] for h in history}
    assert len(digests) == 6


def test_removed_step_is_held_until_apply_cancels_it(project: Path, env: dict[str, str]):
    subscribe(env, "reader@example.com", "2026-03-02T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    remove_step(project, "neuroplasticity")  # "Reason 3", due Friday 6 March

    warning = "step 'neuroplasticity' has no file any more; its scheduled deliveries are held"
    # Real processes: the warning is what an operator sees on stderr.
    wednesday = run_pass(env, "2026-03-04T18:00:00Z", P)  # Reason 2 is due and goes out
    assert wednesday.count(warning) == 1 and "sent 1" in wednesday
    assert f"`dripline plan {SLUG}`" in wednesday
    held = run_pass(env, "2026-03-06T18:00:00Z", P)
    assert held.count(warning) == 1 and "sent 0" in held
    assert reasons(subjects_for(project, "reader@")) == REASONS[:2]
    status = dripline_json(env, "timeline", SLUG, "--email", "reader@example.com")
    assert {r["id"]: r["status"] for r in status}["neuroplasticity"] == "scheduled"

    (plan,) = dripline_json(env, "plan", SLUG, "--now", "2026-03-06T18:00:00Z")
    assert plan["removed"] == [{"step": "neuroplasticity", "cancelled": 1}]
    assert plan["added"] == []
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-06T18:00:00Z")
    after = run_pass(env, "2026-03-09T18:00:00Z", P)
    assert "has no file any more" not in after and "sent 1" in after
    for moment in PASSES[4:]:
        run_pass(env, moment)
    got = reasons(subjects_for(project, "reader@"))
    assert got == [REASONS[0], REASONS[1], REASONS[3], REASONS[4], REASONS[5]]
    status = dripline_json(env, "timeline", SLUG, "--email", "reader@example.com")
    assert {r["id"]: r["status"] for r in status}["neuroplasticity"] == "cancelled"


def test_changed_day_retimes_only_scheduled_rows(project: Path, env: dict[str, str]):
    subscribe(env, "early@example.com", "2026-03-02T08:00")
    subscribe(env, "late@example.com", "2026-03-09T08:00")
    for moment in ("2026-03-02T16:01:00Z", "2026-03-04T18:00:00Z", "2026-03-06T18:00:00Z"):
        run_pass(env, moment)
    run_pass(env, "2026-03-09T16:01:00Z")
    before = {
        who: dripline_json(env, "timeline", SLUG, "--email", f"{who}@example.com")
        for who in ("early", "late")
    }
    edit_step(project, "neuroplasticity", "day = 4", "day = 5")  # early already has it
    (plan,) = dripline_json(env, "plan", SLUG, "--now", "2026-03-09T18:00:00Z")
    moved, *kept_apart = plan["retimed"]
    assert moved["step"] == "neuroplasticity" and moved["changes"] == ["day 4 -> 5"]
    assert moved["deliveries"] == 1
    assert moved["examples"][0]["email"] == "late@example.com"
    # The steps after it move along to stay on later days than it (only late's rows).
    assert [(k["step"], k["deliveries"]) for k in kept_apart] == [
        ("fewer-side-effects", 1),
        ("holistic-health", 1),
    ]
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-09T18:00:00Z")
    after = {
        who: dripline_json(env, "timeline", SLUG, "--email", f"{who}@example.com")
        for who in ("early", "late")
    }
    assert after["early"] == before["early"]  # sent rows keep what happened
    changed = [
        (b["id"], b["due_utc"], a["due_utc"])
        for b, a in zip(before["late"], after["late"], strict=True)
        if b["due_utc"] != a["due_utc"]
    ]
    # Day 4 of an enrollment on Monday 9 March was Friday 13; day 5 is Saturday, so Monday 16,
    # and the next two steps each move one weekday later; the last (Thursday 19) stays.
    assert changed == [
        ("neuroplasticity", "2026-03-13T16:00:00+00:00", "2026-03-16T16:00:00+00:00"),
        ("fewer-side-effects", "2026-03-16T16:00:00+00:00", "2026-03-17T16:00:00+00:00"),
        ("holistic-health", "2026-03-17T16:00:00+00:00", "2026-03-18T16:00:00+00:00"),
    ]


def test_content_change_shows_a_diff_and_reaches_only_unsent(project: Path, env: dict[str, str]):
    subscribe(env, "early@example.com", "2026-03-02T08:00")
    subscribe(env, "late@example.com", "2026-03-09T08:00")
    for moment in ("2026-03-02T16:01:00Z", "2026-03-04T18:00:00Z"):
        run_pass(env, moment)
    edit_step(project, "treatment-resistant", "Reason 2 of 6: High", "Reason 2 of 6: Very high")
    edit_step(project, "treatment-resistant", "## High Efficacy", "## Very High Efficacy")
    plan_text = dripline(env, "plan", SLUG, "--now", "2026-03-05T18:00:00Z").stdout
    assert "treatment-resistant (subject, body changed): 1 pending" in plan_text
    assert "-Subject: Reason 2 of 6: High efficacy" in plan_text
    assert "+Subject: Reason 2 of 6: Very high efficacy" in plan_text
    assert "-## High Efficacy in Treatment-Resistant Cases" in plan_text
    assert "+## Very High Efficacy in Treatment-Resistant Cases" in plan_text
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-05T18:00:00Z")
    for moment in ("2026-03-09T16:01:00Z", "2026-03-11T18:00:00Z"):
        run_pass(env, moment)
    assert "Reason 2 of 6: High efficacy in treatment-resistant cases" in subjects_for(
        project, "early@"
    )
    late = subjects_for(project, "late@")
    assert "Reason 2 of 6: Very high efficacy in treatment-resistant cases" in late
    # Each got Reason 2 once; early's ledger keeps the subject as it went out.
    history = dripline_json(env, "history", "early@example.com")
    assert history[1]["subject"] == "Reason 2 of 6: High efficacy in treatment-resistant cases"
    for who in ("early@", "late@"):
        assert reasons(subjects_for(project, who)).count("Reason 2 of 6") == 1


def test_unsubscribe_from_a_completed_sequence_is_stored(project: Path, env: dict[str, str]):
    subscribe(env, "done@example.com", "2026-03-02T08:00")
    for moment in ("2026-03-02T16:01:00Z", *PASSES[:8]):
        run_pass(env, moment)
    assert reasons(subjects_for(project, "done@")) == REASONS
    dripline(env, "unsubscribe", "done@example.com", "--campaign", SLUG)
    status = dripline_json(env, "status", SLUG)
    assert status["unsubscribed"] == 1
    # Enrolled again (a re-subscribe): the choice is respected, nothing is scheduled.
    again = dripline(
        env, "subscribe", "done@example.com", "--campaign", SLUG, "--at", "2026-04-01T08:00"
    ).stdout
    assert "Already subscribed" in again
    assert dripline_json(env, "status", SLUG)["unsubscribed"] == 1
    run_pass(env, "2026-04-20T18:00:00Z")
    assert len(mailbox(project)) == 6


def test_two_workers_during_an_apply_send_nothing_twice(
    project: Path, env: dict[str, str], db_url: str
):
    count = 150
    start = datetime.now(UTC) - timedelta(days=3)
    lines = ["email,name,timezone,subscribed_at"]
    lines += [f"r{i}@example.com,R {i},UTC,{start.isoformat()}" for i in range(count)]
    (project / "people.csv").write_text("\n".join(lines) + "\n")
    dripline(env, "import", str(project / "people.csv"), "--campaign", SLUG)
    insert_step(
        project,
        2,
        "new-insert",
        f'subject = "{NEW_SUBJECT}"\npreheader = "Something new"\nday = 1\nbackfill = true',
        "Hello, this one is new.",
    )
    command = [*DRIPLINE, "run", "--tick", "0.2", "--batch", "5"]
    workers = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    try:
        new = project / "outbox" / "new"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (new.is_dir() and any(new.iterdir())):
            time.sleep(0.05)
        applied = dripline(env, "apply", SLUG, "--yes", process=True).stdout
        assert "applied" in applied
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(mailbox(project)) < count:
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    messages = mailbox(project)
    pairs = Counter((str(m["To"]), str(m["Subject"])) for m in messages)
    assert len(messages) >= count
    assert set(pairs.values()) == {1}, [p for p, n in pairs.items() if n > 1]
    engine = make_engine(db_url)
    with engine.connect() as conn:
        per_step = dict(
            conn.execute(
                text(
                    "SELECT step_id, count(*) FROM deliveries "
                    "WHERE status = 'sent' GROUP BY step_id"
                )
            ).all()
        )
        inserted = conn.scalar(text("SELECT count(*) FROM deliveries WHERE step_id = 'new-insert'"))
        stuck = conn.scalar(text("SELECT count(*) FROM deliveries WHERE status = 'sending'"))
        # The ledger is written with each group of outcomes (one statement per chunk).
        unrecorded = conn.scalar(
            text(
                "SELECT count(*) FROM deliveries WHERE status = 'sent' "
                "AND (subject IS NULL OR body_digest IS NULL)"
            )
        )
    engine.dispose()
    assert sum(per_step.values()) == len(messages)  # every sent row is one message, and back
    assert per_step["rapid-relief"] == count
    assert inserted == count  # nobody was past position 2: everyone gets the new step once
    assert stuck == 0 and unrecorded == 0


def test_run_apply_applies_pending_plans_before_the_pass(project: Path, env: dict[str, str]):
    subscribe(env, "reader@example.com", "2026-03-02T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    remove_step(project, "treatment-resistant")  # due Wednesday 4 March
    done = dripline(env, "run", "--once", "--apply", "--now", "2026-03-04T18:00:00Z", process=P)
    assert "ketamine-therapy: applied (0 step(s) added, 1 removed" in done.stdout
    assert "has no file any more" not in done.stdout + done.stderr
    timeline = dripline_json(env, "timeline", SLUG, "--email", "reader@example.com")
    assert {r["id"]: r["status"] for r in timeline}["treatment-resistant"] == "cancelled"
    assert "no changes" in dripline(env, "plan", SLUG, "--now", "2026-03-04T18:00:00Z").stdout
    run_pass(env, "2026-03-06T18:00:00Z")
    assert reasons(subjects_for(project, "reader@")) == [REASONS[0], REASONS[2]]


REASON_4 = "Reason 4 of 6: Lowers the risk of side effects compared to traditional antidepressants"


def test_when_and_subject_variants_are_content_changes_with_pending_counts(
    project: Path, env: dict[str, str]
):
    subscribe(env, "early@example.com", "2026-03-02T08:00")
    subscribe(env, "late@example.com", "2026-03-09T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    edit_step(
        project,
        "neuroplasticity",
        "day = 4",
        "when = \"subscriber.plan | default('') == 'pro'\"\nday = 4",
    )
    edit_step(
        project,
        "fewer-side-effects",
        f'subject = "{REASON_4}"',
        f'subjects = ["{REASON_4}", "Reason 4 of 6: Gentler than the usual pills"]',
    )
    (plan,) = dripline_json(env, "plan", SLUG, "--now", "2026-03-03T18:00:00Z")
    content = {c["step"]: c for c in plan["content"]}
    assert content["neuroplasticity"]["changed"] == ["when"]
    assert content["fewer-side-effects"]["changed"] == ["subject variants"]
    assert content["neuroplasticity"]["pending"] == 2
    assert content["fewer-side-effects"]["pending"] == 2
    assert "+When: subscriber.plan | default('') == 'pro'" in content["neuroplasticity"]["diff"]
    assert "-When: (every subscriber)" in content["neuroplasticity"]["diff"]
    assert "Gentler than the usual pills" in content["fewer-side-effects"]["diff"]
    text_plan = dripline(env, "plan", SLUG, "--now", "2026-03-03T18:00:00Z").stdout
    assert "neuroplasticity (when changed): 2 pending" in text_plan
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-03T18:00:00Z")
    (after,) = dripline_json(env, "plan", SLUG, "--now", "2026-03-03T18:00:00Z")
    assert after["content"] == []


def test_plan_says_what_a_subjects_edit_does_to_a_running_or_decided_test(
    project: Path, env: dict[str, str], db_url: str
):
    """probe-18b LOW 5: a reorder of a running test's subjects keeps each text's counts, an
    edited variant starts from zero, and the winner's text edited out resumes the split:
    plan says so (text and --json ``notes``)."""
    gentler = "Reason 4 of 6: Gentler than the usual pills"
    subscribe(env, "early@example.com", "2026-03-02T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    edit_step(
        project,
        "fewer-side-effects",
        f'subject = "{REASON_4}"',
        f'subjects = ["{REASON_4}", "{gentler}"]',
    )
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-03T18:00:00Z")
    now = "2026-03-03T18:00:00Z"

    def notes() -> list[str]:
        (plan,) = dripline_json(env, "plan", SLUG, "--now", now)
        (change,) = [c for c in plan["content"] if c["step"] == "fewer-side-effects"]
        return change["notes"]

    reordered = f'subjects = ["{gentler}", "{REASON_4}"]'
    edit_step(project, "fewer-side-effects", f'subjects = ["{REASON_4}", "{gentler}"]', reordered)
    assert notes() == [
        "A/B variants reordered: each subject keeps its counts (they follow the text)"
    ]
    assert "note: A/B variants reordered" in dripline(env, "plan", SLUG, "--now", now).stdout
    edited = f'subjects = ["{gentler}", "Reason 4: kinder"]'
    edit_step(project, "fewer-side-effects", reordered, edited)
    assert notes() == [
        "A/B counts follow the subject's text: 1 new or edited variant(s) start from zero "
        "('Reason 4: kinder')"
    ]
    engine = make_engine(db_url)
    try:
        judge_experiment(
            engine,
            SLUG,
            "fewer-side-effects",
            [REASON_4, gentler],
            decide=lambda tallies: Decision(1, 3.0, 0.001),  # REASON_4, edited out above
            now=datetime(2026, 3, 3, 12, tzinfo=UTC),
        )
    finally:
        engine.dispose()
    assert notes() == [
        f"the A/B winner {REASON_4!r} is no longer among the subjects: the split resumes "
        "among these (the test is not judged again)"
    ]
    # probe-18c LOW h: a variant added to a decided test is never sent; say so.
    added = f'subjects = ["{gentler}", "{REASON_4}", "Reason 4: kinder"]'
    edit_step(project, "fewer-side-effects", edited, added)
    assert notes() == [
        f"this step's A/B test was decided on 2026-03-03 ({REASON_4!r} won): the new "
        "variant(s) 'Reason 4: kinder' will never be sent; to test them, use a new step"
    ]


def test_plan_on_a_missing_database_is_an_error_and_creates_nothing(project: Path, tmp_path: Path):
    missing = tmp_path / "missing.sqlite"
    env = project_env(project, f"sqlite:///{missing}")
    done = dripline(env, "plan", SLUG, "--db", str(missing), ok=(1,))
    assert done.stderr.startswith(f"Error: no database at {missing}")
    assert done.stdout == "" and not missing.exists()


def test_declining_apply_exits_1_and_changes_nothing(project: Path, sqlite_url: str):
    env = project_env(project, sqlite_url)
    subscribe(env, "reader@example.com", "2026-03-02T08:00")
    remove_step(project, "holistic-health")
    for answer in ("n\n", ""):  # declined, or no terminal to answer
        ran = subprocess.run(
            [*DRIPLINE, "apply", SLUG], input=answer, env=env, capture_output=True, text=True
        )
        assert ran.returncode == 1, ran.stdout + ran.stderr
        assert "applied (" not in ran.stdout
    (plan,) = dripline_json(env, "plan", SLUG)
    assert plan["removed"] == [{"step": "holistic-health", "cancelled": 1}]
    timeline = dripline_json(env, "timeline", SLUG, "--email", "reader@example.com")
    assert {r["id"]: r["status"] for r in timeline}["holistic-health"] == "scheduled"


def test_step_file_deleted_without_renumbering_the_rest_goes_on(project: Path, env: dict[str, str]):
    subscribe(env, "reader@example.com", "2026-03-02T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    (project / "campaigns" / SLUG / "03-neuroplasticity.md").unlink()  # 01 02 04 05 06 left
    assert "ok" in dripline(env, "check", SLUG).stdout
    assert "sent 1" in run_pass(env, "2026-03-04T18:00:00Z")  # Reason 2 goes out on time
    (plan,) = dripline_json(env, "plan", SLUG, "--now", "2026-03-04T18:00:00Z")
    assert plan["removed"] == [{"step": "neuroplasticity", "cancelled": 1}]
    assert plan["added"] == [] and plan["content"] == [] and plan["renamed"] == []
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-04T18:00:00Z")
    for moment in PASSES:
        run_pass(env, moment)
    got = reasons(subjects_for(project, "reader@"))
    assert got == [REASONS[0], REASONS[1], REASONS[3], REASONS[4], REASONS[5]]


def test_two_step_files_with_one_number_fail_check(project: Path, env: dict[str, str]):
    folder = project / "campaigns" / SLUG
    (folder / "03-neuroplasticity.md").rename(folder / "02-neuroplasticity.md")
    done = dripline(env, "check", SLUG, ok=(1,))
    assert "02-treatment-resistant.md: error: two files are numbered 02 (02-neuroplasticity.md" in (
        done.stderr
    )
