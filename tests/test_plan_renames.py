"""Renaming, restoring and backfilling steps of a live campaign, through the `dripline` CLI:
what plan says, what apply writes to the database, what reaches the Maildir."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from edit_support import (
    REASONS,
    SLUG,
    dripline,
    dripline_json,
    edit_step,
    insert_step,
    mailbox,
    project_env,
    reasons,
    remove_step,
    steps_dir,
    subjects_for,
)
from results_support import cli, env_for, links, parse, parts, track
from sqlalchemy import text
from starlette.testclient import TestClient

from dripline.serve import create_app
from dripline.settings import load_settings
from dripline.store import Decision, judge_experiment, make_engine

# Weekdays of March 2026 at 18:00 UTC, after each 09:00 (UTC) send time.
PASSES = [f"2026-03-{day:02d}T18:00:00Z" for day in (5, 6, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20)]


@pytest.fixture
def env(project: Path, db_url: str) -> dict[str, str]:
    return project_env(project, db_url)


def subscribe(env: dict[str, str], address: str, at: str) -> None:
    dripline(env, "subscribe", address, "--campaign", SLUG, "--tz", "UTC", "--at", at)


def run_pass(env: dict[str, str], now: str) -> str:
    done = dripline(env, "run", "--once", "--now", now)
    return done.stdout + done.stderr


def start_two(env: dict[str, str]) -> None:
    """early@ has Reasons 1 and 2 by Thursday 5 March; late@ enrolls the next Monday."""
    subscribe(env, "early@example.com", "2026-03-02T08:00")
    subscribe(env, "late@example.com", "2026-03-09T08:00")
    for moment in ("2026-03-02T16:01:00Z", "2026-03-04T18:00:00Z"):
        run_pass(env, moment)


def finish(env: dict[str, str]) -> None:
    for moment in PASSES:
        run_pass(env, moment)


def step_ids(db_url: str) -> Counter[str]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        found = Counter(
            dict(
                conn.execute(
                    text("SELECT step_id, count(*) FROM deliveries GROUP BY step_id")
                ).all()
            )
        )
    engine.dispose()
    return found


def rename(project: Path, old: str, new: str) -> None:
    (path,) = steps_dir(project).glob(f"[0-9][0-9]-{old}.md")
    path.rename(path.with_name(f"{path.name[:3]}{new}.md"))


def test_renamed_file_keeps_the_step_and_nobody_gets_it_twice(
    project: Path, env: dict[str, str], db_url: str
):
    start_two(env)
    rename(project, "treatment-resistant", "high-efficacy")
    now = "2026-03-05T18:00:00Z"
    plan = dripline(env, "plan", SLUG, "--now", now).stdout
    assert (
        "= treatment-resistant -> high-efficacy (renamed: same content): 1 recipient(s) "
        "already received it and will not get it again; 1 scheduled delivery(ies) carry over"
    ) in plan
    assert "step(s) added" in plan and "+ high-efficacy" not in plan
    assert "- treatment-resistant" not in plan
    (as_json,) = dripline_json(env, "plan", SLUG, "--now", now)
    assert as_json["added"] == [] and as_json["removed"] == []
    assert as_json["renamed"] == [
        {
            "from": "treatment-resistant",
            "to": "high-efficacy",
            "reason": "same content",
            "received": 1,
            "scheduled": 1,
        }
    ]
    dripline(env, "apply", SLUG, "--yes", "--now", now)
    assert "no changes" in dripline(env, "plan", SLUG, "--now", now).stdout
    finish(env)
    for who in ("early@", "late@"):
        assert reasons(subjects_for(project, who)) == REASONS
    ids = step_ids(db_url)
    assert ids["high-efficacy"] == 2 and "treatment-resistant" not in ids
    # The ledger keeps what went out; the step is found under its new name.
    history = dripline_json(env, "history", "early@example.com")
    assert [h["step"] for h in history][:2] == ["rapid-relief", "high-efficacy"]


def test_explicit_id_added_later_is_the_same_step(project: Path, env: dict[str, str]):
    start_two(env)
    edit_step(project, "treatment-resistant", "day = ", 'id = "reason-two"\nday = ')
    edit_step(project, "treatment-resistant", "Reason 2 of 6: High", "Reason 2 of 6: Very high")
    now = "2026-03-05T18:00:00Z"
    plan = dripline(env, "plan", SLUG, "--now", now).stdout
    assert "= treatment-resistant -> reason-two (renamed: same file): 1 recipient(s)" in plan
    assert "* reason-two (subject changed): 1 pending" in plan  # late@'s is still to come
    dripline(env, "apply", SLUG, "--yes", "--now", now)
    finish(env)
    early, late = subjects_for(project, "early@"), subjects_for(project, "late@")
    assert reasons(early) == REASONS and reasons(late) == REASONS
    assert "Reason 2 of 6: High efficacy in treatment-resistant cases" in early
    assert "Reason 2 of 6: Very high efficacy in treatment-resistant cases" in late


def test_rename_without_apply_holds_the_old_name_and_sends_nothing_twice(
    project: Path, env: dict[str, str], caplog: pytest.LogCaptureFixture
):
    subscribe(env, "reader@example.com", "2026-03-02T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    rename(project, "treatment-resistant", "high-efficacy")
    held = run_pass(env, "2026-03-04T18:00:00Z")
    assert "sent 0" in held
    assert "step 'treatment-resistant' has no file any more" in caplog.text
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-04T18:00:00Z")
    finish(env)
    assert reasons(subjects_for(project, "reader@")) == REASONS


def test_renamed_backfill_step_is_not_sent_again(project: Path, env: dict[str, str], db_url: str):
    start_two(env)
    insert_step(
        project, 2, "extra", 'subject = "Extra"\npreheader = "x"\nday = 1\nbackfill = true', "Hi."
    )
    now = "2026-03-05T18:00:00Z"
    (plan,) = dripline_json(env, "plan", SLUG, "--now", now)
    (added,) = plan["added"]
    # early@ is past position 2 (Reason 2 went out), late@ is not: both get it (backfill).
    assert (added["enrollments"], added["already_past"]) == (2, 1)
    assert plan["content"] == []  # the footer's renumbered "(N of M)" is not new content
    dripline(env, "apply", SLUG, "--yes", "--now", now)
    assert step_ids(db_url)["extra"] == added["enrollments"]
    run_pass(env, now)
    assert subjects_for(project, "early@").count("Extra") == 1

    rename(project, "extra", "bonus")
    (plan,) = dripline_json(env, "plan", SLUG, "--now", PASSES[1])
    assert plan["added"] == [] and plan["removed"] == []
    assert [(r["from"], r["to"], r["received"]) for r in plan["renamed"]] == [("extra", "bonus", 1)]
    dripline(env, "apply", SLUG, "--yes", "--now", PASSES[1])
    finish(env)
    for who in ("early@", "late@"):
        got = subjects_for(project, who)
        assert got.count("Extra") == 1 and reasons(got) == REASONS
    assert step_ids(db_url)["bonus"] == 2


def test_restored_step_reaches_those_still_before_it(project: Path, env: dict[str, str]):
    subscribe(env, "reader@example.com", "2026-03-02T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    folder = steps_dir(project)
    saved = (folder / "05-holistic-health.md").read_text()
    remove_step(project, "holistic-health")
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-03T18:00:00Z")
    (folder / "05-other-therapies.md").rename(folder / "06-other-therapies.md")
    (folder / "05-holistic-health.md").write_text(saved)

    plan = dripline(env, "plan", SLUG, "--now", "2026-03-03T18:00:00Z").stdout
    assert "+ holistic-health (restored step 5): 1 enrollment(s) get it" in plan
    (as_json,) = dripline_json(env, "plan", SLUG, "--now", "2026-03-03T18:00:00Z")
    assert as_json["added"][0]["restored"] == 1
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-03T18:00:00Z")
    finish(env)
    assert reasons(subjects_for(project, "reader@")) == REASONS
    timeline = dripline_json(env, "timeline", SLUG, "--email", "reader@example.com")
    assert {r["id"]: r["status"] for r in timeline}["holistic-health"] == "sent"


def test_restored_step_says_why_it_reaches_nobody(project: Path, env: dict[str, str]):
    subscribe(env, "reader@example.com", "2026-03-02T08:00")
    run_pass(env, "2026-03-02T16:01:00Z")
    folder = steps_dir(project)
    saved = (folder / "02-treatment-resistant.md").read_text()
    remove_step(project, "treatment-resistant")
    dripline(env, "apply", SLUG, "--yes", "--now", "2026-03-03T18:00:00Z")
    for moment in PASSES[:2]:  # Reason 3 (now step 2) goes out: reader is past position 2
        run_pass(env, moment)
    for path in sorted(folder.glob("[0-9][0-9]-*.md"), reverse=True)[:-1]:
        path.rename(folder / f"{int(path.name[:2]) + 1:02d}-{path.name[3:]}")
    (folder / "02-treatment-resistant.md").write_text(saved)
    plan = dripline(env, "plan", SLUG, "--now", PASSES[2]).stdout
    assert (
        "+ treatment-resistant (restored step 2): reaches nobody: all 1 active enrollment(s) "
        "are already past it and it has no `backfill = true`"
    ) in plan
    dripline(env, "apply", SLUG, "--yes", "--now", PASSES[2])
    finish(env)
    got = reasons(subjects_for(project, "reader@"))
    assert got == [REASONS[0], *REASONS[2:]] and len(mailbox(project)) == 5


def test_a_renamed_step_keeps_the_tracked_links_of_emails_already_sent(
    project: Path, db_url: str
) -> None:
    """Sent with tracked links, then the step file renamed and applied: the links in the
    email already delivered still redirect where they did, and count for the step."""
    track(project, "http://127.0.0.1:9/landing")
    env = env_for(project, "https://news.example.com", db_url)
    now = datetime.now(UTC).replace(microsecond=0)
    cli(env, "subscribe", "ada@example.com", "--campaign", SLUG, "--at", now.isoformat())
    cli(env, "run", "--once", "--now", (now + timedelta(hours=1)).isoformat())
    (mail,) = (project / "outbox" / "new").iterdir()
    text_part, _ = parts(parse(mail.read_bytes()))
    sent_links = links(text_part, "https://news.example.com", "c")
    assert len(sent_links) == 2
    rename(project, "rapid-relief", "relief-fast")
    plan = cli(env, "plan", SLUG)
    assert "rapid-relief -> relief-fast" in plan
    cli(env, "apply", SLUG, "--yes")
    app = create_app(load_settings(environ=env))
    with TestClient(app, follow_redirects=False) as client:
        answers = [client.get(link.removeprefix("https://news.example.com")) for link in sent_links]
    assert [a.status_code for a in answers] == [302, 302]
    assert answers[0].headers["location"].startswith("http://127.0.0.1:9/landing?ref=email1&")
    assert answers[1].headers["location"].startswith("http://127.0.0.1:9/landing?ref=more&")
    report = json.loads(cli(env, "report", SLUG, "--json"))
    first = report["steps"][0]
    # Both clicks came seconds after the relay accepted the email: machine clicks.
    assert (first["step"], first["sent"], first["machine_clicks"]) == ("relief-fast", 1, 2)


def decided_ab_step(
    project: Path, db_url: str, *, people: int
) -> tuple[dict[str, str], datetime, Path]:
    """Step 1 as an A/B step ("Relief, take A" / "take B", click tracking on), sent to
    ``people`` subscribers, then decided for "take B" by the store's own judge (the run
    never reaches winner_after = 1000 here). Returns the env, the enrolment time and the
    step file."""
    track(project, "http://127.0.0.1:9/landing")
    step = steps_dir(project) / "01-rapid-relief.md"
    step.write_text(
        step.read_text().replace(
            'subject = "Reason 1 of 6: Rapid relief from symptoms"',
            'subjects = ["Relief, take A", "Relief, take B"]',
        )
    )
    toml = project / "campaigns" / SLUG / "campaign.toml"
    toml.write_text(toml.read_text() + "\n[experiment]\nwinner_after = 1000\n")
    env = env_for(project, "https://news.example.com", db_url)
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(people):
        cli(env, "subscribe", f"a{i}@example.com", "--campaign", SLUG, "--at", now.isoformat())
    cli(env, "run", "--once", "--now", (now + timedelta(hours=1)).isoformat())
    engine = make_engine(db_url)
    try:
        judge_experiment(
            engine,
            SLUG,
            "rapid-relief",
            ["Relief, take A", "Relief, take B"],
            decide=lambda tallies: Decision(2, 3.1, 0.002),
            now=now + timedelta(hours=2),
        )
    finally:
        engine.dispose()
    return env, now, step


def winner_rows(db_url: str) -> list[tuple[str, str | None]]:
    """Every stored A/B decision as (step identity, winning subject)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT step_id, subject FROM experiment_winners")).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows]


def test_a_renamed_ab_step_keeps_its_winner_and_later_sends_carry_it(
    project: Path, db_url: str
) -> None:
    """An A/B step with a stored winner renamed and applied: the winner row moves with the
    deliveries (probe-18b MEDIUM 7), so the report still shows it under the new name and
    everyone enrolled later gets the winning subject instead of a new split."""
    env, now, _ = decided_ab_step(project, db_url, people=4)
    rename(project, "rapid-relief", "relief-fast")
    cli(env, "apply", SLUG, "--yes")
    rows = winner_rows(db_url)
    assert [tuple(r) for r in rows] == [("relief-fast", "Relief, take B")]
    later = now + timedelta(hours=3)
    for i in range(12):
        cli(env, "subscribe", f"b{i}@example.com", "--campaign", SLUG, "--at", later.isoformat())
    cli(env, "run", "--once", "--now", (later + timedelta(hours=1)).isoformat())
    got = Counter(subjects_for(project, f"b{i}@")[0] for i in range(12))
    assert got == {"Relief, take B": 12}
    report = json.loads(cli(env, "report", SLUG, "--json"))
    experiment = report["steps"][0]["experiment"]
    assert report["steps"][0]["step"] == "relief-fast"
    assert experiment["winner"]["subject"] == "Relief, take B"
    assert not experiment["split_resumed"]


@pytest.mark.parametrize("subjects", ["new", "restored"])
def test_a_step_added_under_a_removed_steps_identity_is_a_new_test_unless_restored(
    project: Path, db_url: str, subjects: str
) -> None:
    """probe-18c MEDIUM D: a decided A/B step removed (apply), then a step with the same
    identity but other subjects added: that is a new test, so the old decision is set
    aside (kept under a marked name) and its subscribers get the split, not the old
    winner's silence. Restored with its subjects, the step keeps its decision."""
    env, now, step = decided_ab_step(project, db_url, people=1)
    kept = step.read_text()
    step.unlink()
    cli(env, "apply", SLUG, "--yes")
    if subjects == "new":
        kept = kept.replace('["Relief, take A", "Relief, take B"]', '["New take A", "New take B"]')
    step.write_text(kept)
    cli(env, "apply", SLUG, "--yes")
    rows = winner_rows(db_url)
    later = now + timedelta(hours=3)
    for i in range(16):
        cli(env, "subscribe", f"b{i}@example.com", "--campaign", SLUG, "--at", later.isoformat())
    cli(env, "run", "--once", "--now", (later + timedelta(hours=1)).isoformat())
    got = Counter(subjects_for(project, f"b{i}@")[0] for i in range(16))
    if subjects == "restored":
        assert [tuple(r) for r in rows] == [("rapid-relief", "Relief, take B")]
        assert got == {"Relief, take B": 16}
        return
    ((identity, subject),) = rows
    assert identity.startswith("rapid-relief~removed-") and subject == "Relief, take B"
    assert set(got) == {"New take A", "New take B"}  # the new test's split
