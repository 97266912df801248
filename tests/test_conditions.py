"""Conditional steps (front matter ``when``): checked by `check`, evaluated at send time.

The sequence is sent by real `dripline run --once` processes to an aiosmtpd server,
pass by pass on a simulated clock (``--now`` = the next due time); the mailbox and
the database are read back.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner
from smtp_servers import RecordingHandler, running_server

from dripline.campaign import load_campaign
from dripline.cli import main
from dripline.conditions import check_when, step_applies
from dripline.dispatch import CampaignLibrary, Dispatcher
from dripline.errors import CampaignError
from dripline.metrics import RunMetrics
from dripline.runtime import unsubscribe_link_maker
from dripline.settings import Settings
from dripline.store import SqlDeliveryQueue, open_store
from dripline.timetable import Timetable
from sender.memory import MemorySender

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
STEP3 = "campaigns/ketamine-therapy/03-neuroplasticity.md"


def add_front_matter(project: Path, relative: str, line: str) -> None:
    path = project / relative
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("+++\n", f"+++\n{line}\n", 1), encoding="utf-8")


def dripline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DRIPLINE, *args], env=env, capture_output=True, text=True, timeout=120)


def next_due(project: Path) -> tuple[str, str, int] | None:
    """(due time ISO UTC, subscriber email, step) of the earliest scheduled delivery."""
    with sqlite3.connect(project / "dripline.db") as db:
        row = db.execute(
            "SELECT d.due_at, s.email, d.step FROM deliveries d "
            "JOIN enrollments e ON e.id = d.enrollment_id "
            "JOIN subscribers s ON s.id = e.subscriber_id "
            "WHERE d.status = 'scheduled' ORDER BY d.due_at, d.id LIMIT 1"
        ).fetchone()
    if row is None:
        return None
    return row[0].replace(" ", "T")[:19] + "Z", row[1], row[2]


def due_of(project: Path, address: str, step: int) -> str:
    """When ``address``'s delivery of ``step`` is due (ISO UTC, as :func:`next_due`)."""
    with sqlite3.connect(project / "dripline.db") as db:
        (due,) = db.execute(
            "SELECT d.due_at FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id "
            "JOIN subscribers s ON s.id = e.subscriber_id WHERE s.email = ? AND d.step = ?",
            (address, step),
        ).fetchone()
    return due.replace(" ", "T")[:19] + "Z"


def received_steps(handler: RecordingHandler) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for item in handler.received:
        message = email.message_from_bytes(item.data, policy=email.policy.default)
        number = int(str(message["Subject"]).split("Reason ", 1)[1].split(" ", 1)[0])
        found.setdefault(item.rcpt_tos[0], []).append(number)
    return found


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_DATABASE_URL": f"sqlite:///{project / 'dripline.db'}",
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",  # the sample campaign, to a test server
    }


def test_pro_gets_six_basic_five_with_step_3_skipped_and_an_upgrade_by_cli_counts(project, env):
    add_front_matter(project, STEP3, "when = \"subscriber.plan == 'pro'\"")
    (project / "people.csv").write_text(
        "email,name,timezone,subscribed_at,plan\n"
        "pro@example.com,Pro Reader,America/Los_Angeles,2026-03-05T12:00:00-08:00,pro\n"
        "basic@example.com,Basic Reader,America/Los_Angeles,2026-03-05T12:00:00-08:00,basic\n"
        "upgrade@example.com,Up Grader,America/Los_Angeles,2026-03-05T12:00:00-08:00,basic\n"
    )
    imported = dripline(
        env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy"
    )
    assert imported.returncode == 0, imported.stderr
    handler = RecordingHandler()
    upgraded = False
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        for _ in range(40):  # six steps for three people, one pass per due moment
            due = next_due(project)
            if due is None:
                break
            moment = due[0]
            if not upgraded and moment >= due_of(project, "upgrade@example.com", 3):
                # Before step 3 is due: the subscriber becomes pro, by the CLI.
                changed = dripline(env, "subscriber", "set", "upgrade@example.com", "plan=pro")
                assert changed.returncode == 0, changed.stderr
                upgraded = True
            ran = dripline(env, "run", "--once", "--now", moment)
            assert ran.returncode == 0, ran.stdout + ran.stderr
        assert next_due(project) is None
    got = received_steps(handler)
    assert sorted(got["pro@example.com"]) == [1, 2, 3, 4, 5, 6]
    assert sorted(got["basic@example.com"]) == [1, 2, 4, 5, 6]
    assert sorted(got["upgrade@example.com"]) == [1, 2, 3, 4, 5, 6]
    timeline = dripline(
        env, "timeline", "ketamine-therapy", "--email", "basic@example.com", "--json"
    )
    statuses = [row["status"] for row in json.loads(timeline.stdout)]
    assert statuses == ["sent", "sent", "skipped", "sent", "sent", "sent"]
    status = json.loads(dripline(env, "status", "ketamine-therapy", "--json").stdout)
    assert [s["skipped"] for s in status["steps"]] == [0, 0, 1, 0, 0, 0]
    assert [s["sent"] for s in status["steps"]] == [3, 3, 2, 3, 3, 3]
    with sqlite3.connect(project / "dripline.db") as db:
        enrollments = Counter(s for (s,) in db.execute("SELECT status FROM enrollments"))
    assert enrollments == {"completed": 3}  # a skipped step does not hold the sequence open
    # The report: a skipped step is not a message (not sent, not delivered), counted apart.
    out = project / "report.html"
    reported = dripline(env, "report", "ketamine-therapy", "--json", "--out", str(out))
    data = json.loads(reported.stdout)
    assert [s["skipped"] for s in data["steps"]] == [0, 0, 1, 0, 0, 0]
    assert [s["sent"] for s in data["steps"]] == [3, 3, 2, 3, 3, 3]
    assert [s["delivered"] for s in data["steps"]] == [3, 3, 2, 3, 3, 3]
    assert (data["totals"]["sent"], data["totals"]["skipped"]) == (17, 1)
    assert sum(day["sent"] for day in data["sends_per_day"]) == 17
    page = lxml.html.fromstring(out.read_text())
    headers = [th.text_content() for th in page.cssselect("thead th")]
    assert headers[:3] == ["Step", "Sent", "Skipped (when false)"]
    third = page.cssselect("tbody tr")[2]
    assert [td.text_content() for td in third.cssselect("td")][:3] == ["2", "1", "2"]


def test_a_when_that_runs_away_is_deferred_within_the_render_budget(project: Path):
    # Each `in` scans a list: 10**5 x 10**5 / 2 comparisons, far past a 1 s budget.
    add_front_matter(
        project, STEP3, "when = \"range(100000)|select('in', range(100000)|reverse|list)|list\""
    )
    shutil.copytree(project / "campaigns/ketamine-therapy", project / "campaigns/second")
    other = project / "campaigns/second" / STEP3.rsplit("/", 1)[1]
    lines = other.read_text().splitlines(keepends=True)
    lines[1] = 'when = "false"\n'  # the same step elsewhere: evaluated at once, skipped
    other.write_text("".join(lines))
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir, render_budget=1.0)
    queue = SqlDeliveryQueue(engine, lambda slug: Timetable.of(library.campaign(slug)))
    for slug, address in (("ketamine-therapy", "slow@example.com"), ("second", "fine@example.com")):
        args = ["--root", str(project), "subscribe", address, "--campaign", slug]
        enroll = CliRunner().invoke(main, [*args, "--tz", "UTC", "--at", "2026-03-01T09:00"])
        assert enroll.exit_code == 0, enroll.output
    MemorySender.clear("when-budget")
    metrics = RunMetrics()
    dispatcher = Dispatcher(
        queue,
        MemorySender("when-budget"),
        library,
        unsubscribe_link_maker(settings),
        metrics=metrics,
    )
    errors = []
    for _ in range(3):  # a pass at each due time until step 3's (the timetable sets them)
        with sqlite3.connect(project / "dripline.db") as db:
            (due,) = db.execute(
                "SELECT min(due_at) FROM deliveries WHERE step <= 3 AND status = 'scheduled'"
            ).fetchone()
        now = datetime.fromisoformat(due).replace(tzinfo=UTC) + timedelta(minutes=1)
        report = dispatcher.dispatch_due(now)
        errors += report.errors
        if report.deferred:
            break
    queue.close()
    engine.dispose()
    (error,) = errors  # step 3 of the runaway campaign, deferred like a broken file
    assert "03-neuroplasticity.md:2:" in error and "render budget (1 s)" in error
    with sqlite3.connect(project / "dripline.db") as db:
        step3 = dict(
            db.execute(
                "SELECT e.campaign, d.status FROM deliveries d "
                "JOIN enrollments e ON e.id = d.enrollment_id WHERE d.step = 3"
            )
        )
    assert step3 == {"ketamine-therapy": "scheduled", "second": "skipped"}
    sent = Counter(m.recipients[0] for m in MemorySender.outbox("when-budget"))
    assert sent == {"slow@example.com": 2, "fine@example.com": 2}  # steps 1 and 2 each
    # Each outcome is counted under its label: the deferred and the skipped one too.
    scraped = {
        s.labels.get("outcome"): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "dripline_deliveries_total"
    }
    assert (scraped["sent"], scraped["deferred"], scraped["skipped"]) == (4, 1, 1)
    # `check` evaluates it for the samples under the same budget: one error, not one each.
    env = {**os.environ, "DRIPLINE_ROOT": str(project), "DRIPLINE_RENDER_BUDGET": "1"}
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    found = [f for f in json.loads(checked.stdout) if f["rule"] == "when"]
    assert checked.returncode == 1 and len(found) == 1, found
    assert "took longer than 1 s" in found[0]["message"] and found[0]["line"] == 2


def test_a_skipped_last_step_completes_the_enrollment(project, env):
    add_front_matter(project, "campaigns/ketamine-therapy/06-other-therapies.md", 'when = "false"')
    (project / "people.csv").write_text(
        "email,timezone,subscribed_at\nann@example.com,UTC,2026-03-05T12:00:00Z\n"
    )
    dripline(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        while (due := next_due(project)) is not None:
            assert dripline(env, "run", "--once", "--now", due[0]).returncode == 0
    assert sorted(received_steps(handler)["ann@example.com"]) == [1, 2, 3, 4, 5]
    with sqlite3.connect(project / "dripline.db") as db:
        assert db.execute("SELECT status FROM enrollments").fetchone() == ("completed",)
        assert db.execute("SELECT status FROM deliveries WHERE step = 6").fetchone() == ("skipped",)


def test_a_when_that_fails_for_a_subscriber_defers_the_delivery_and_sends_nothing(project, env):
    # No `plan` attribute: StrictUndefined makes the comparison an error, not "false".
    add_front_matter(project, STEP3, "when = \"subscriber.plan == 'pro'\"")
    (project / "people.csv").write_text(
        "email,timezone,subscribed_at\nann@example.com,UTC,2026-03-05T12:00:00Z\n"
    )
    dripline(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        for _ in range(3):
            due = next_due(project)
            assert due is not None
            dripline(env, "run", "--once", "--now", due[0])
    assert sorted(received_steps(handler)["ann@example.com"]) == [1, 2]
    with sqlite3.connect(project / "dripline.db") as db:
        status, error = db.execute(
            "SELECT status, last_error FROM deliveries WHERE step = 3"
        ).fetchone()
    assert status == "scheduled"  # deferred with backoff, like a broken campaign file
    assert "cannot be evaluated" in error and "03-neuroplasticity.md" in error


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("subscriber.plan ==", "not a valid expression"),
        ("plan == 'pro'", "unknown name(s) 'plan'"),
        ("", "must not be empty"),
    ],
)
def test_a_bad_when_is_a_check_error_with_file_and_line(project, env, expression, message):
    add_front_matter(project, STEP3, f"when = {json.dumps(expression)}")
    with pytest.raises(CampaignError) as caught:
        load_campaign(project / "campaigns" / "ketamine-therapy")
    assert message in caught.value.message
    assert caught.value.path.name == "03-neuroplasticity.md" and caught.value.line == 2
    checked = dripline(env, "check", "ketamine-therapy")
    assert checked.returncode == 1
    assert "03-neuroplasticity.md:2: error: " in checked.stdout + checked.stderr


def test_check_evaluates_when_for_every_sample_subscriber(project, env):
    # The samples have no `plan`: every one of them fails the expression, each reported.
    add_front_matter(project, STEP3, "when = \"subscriber.plan == 'pro'\"")
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    found = [f for f in json.loads(checked.stdout) if f["rule"] == "when"]
    assert checked.returncode == 1
    assert len(found) == 3 and {f["line"] for f in found} == {2}
    assert all(f["file"].endswith("03-neuroplasticity.md") for f in found)
    # With a default, it evaluates for everyone: false for all samples is only a warning.
    add_front_matter(project, STEP3, "")
    path = project / STEP3
    path.write_text(
        path.read_text().replace("subscriber.plan ==", "subscriber.plan | default('') =="),
    )
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    found = [f for f in json.loads(checked.stdout) if f["rule"] == "when"]
    assert [f["severity"] for f in found] == ["warning"]


def test_step_applies_sees_current_values_and_email():
    step = type("S", (), {"when": "subscriber.email.endswith('@vip.test')", "path": Path("x")})
    assert step_applies(step, "a@vip.test", {}) is True
    assert step_applies(step, "a@example.com", {}) is False
    assert check_when("subscriber.plan in ['pro', 'team']") is None
    assert "unknown name" in (check_when("now > 3") or "")


def test_the_sandbox_refuses_an_expression_that_reaches_for_python_internals(project, env):
    add_front_matter(project, STEP3, 'when = "subscriber.__class__.__mro__[1].__subclasses__()"')
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    found = [f for f in json.loads(checked.stdout) if f["rule"] == "when"]
    assert checked.returncode == 1 and len(found) == 3
    assert all("unsafe" in f["message"] or "cannot be evaluated" in f["message"] for f in found)


@pytest.mark.parametrize(
    "expression",
    ["10**(10**7) > 1", "2 ** (10 ** 8) > 1", "subscriber.n ** subscriber.m > 1", "3 ** 65 > 1"],
)
def test_a_power_that_would_fold_for_ever_is_refused_at_load(project, env, expression):
    # Probe MEDIUM 2: Jinja folds constant powers while compiling, past any budget.
    add_front_matter(project, STEP3, f"when = {json.dumps(expression)}")
    with pytest.raises(CampaignError) as caught:
        load_campaign(project / "campaigns" / "ketamine-therapy")
    assert "literal power up to 64" in caught.value.message and caught.value.line == 2
    assert check_when("subscriber.seats ** 2 > 10") is None


def test_check_refuses_a_power_too_big_to_fold_before_anything_folds_it(project, env):
    # Probe-18b: finding a `when`'s names generates code, which folds constants; the guard
    # came after it, so `check` computed 10**(10**9) (hours) before refusing it. Now it
    # answers at once; before, this subprocess outlived the helper's 120 s timeout.
    add_front_matter(project, STEP3, 'when = "10 ** (10 ** 9) > 1"')
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    errors = [f for f in json.loads(checked.stdout) if f["severity"] == "error"]
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert [(f["rule"], f["line"]) for f in errors] == [("load", 2)]
    assert "literal power up to 64" in errors[0]["message"]


def test_a_when_raising_any_python_error_is_a_check_error_and_deferred_at_send_time(project, env):
    # Probe MEDIUM 1: KeyError (str.format), LookupError (encode) are the subscriber's values'
    # failure like any other: one check error per sample, and deferred (not failed) at send.
    add_front_matter(project, STEP3, "when = \"('{' ~ subscriber.email ~ '}').format(x=1) == ''\"")
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    found = [f for f in json.loads(checked.stdout) if f["rule"] == "when"]
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert len(found) == 3 and all("KeyError" in f["message"] for f in found)
    lookup = type("S", (), {"when": "subscriber.email.encode('rot13') == 1", "path": Path("x")})
    with pytest.raises(CampaignError, match="cannot be evaluated"):
        step_applies(lookup, "a@example.com", {})
    (project / "people.csv").write_text(
        "email,timezone,subscribed_at\nann@example.com,UTC,2026-03-05T12:00:00Z\n"
    )
    dripline(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        for _ in range(3):
            due = next_due(project)
            assert due is not None
            dripline(env, "run", "--once", "--now", due[0])
    assert sorted(received_steps(handler)["ann@example.com"]) == [1, 2]
    with sqlite3.connect(project / "dripline.db") as db:
        status, error = db.execute(
            "SELECT status, last_error FROM deliveries WHERE step = 3"
        ).fetchone()
    assert status == "scheduled" and "KeyError" in error and "03-neuroplasticity.md" in error


def test_after_an_outage_a_skipped_step_takes_no_slot(project, env):
    # Workers are down while steps 3 and 4 fall due. The pass after the outage sends
    # the pro subscriber step 3 and spaces step 4 after it; for the basic subscriber
    # step 3 is skipped, so step 4 (overdue) is their next email and goes now, not two
    # days later as if step 3 had been sent (probe MEDIUM 3).
    add_front_matter(project, STEP3, "when = \"subscriber.plan == 'pro'\"")
    (project / "people.csv").write_text(
        "email,timezone,subscribed_at,plan\n"
        "pro@example.com,UTC,2026-03-05T12:00:00Z,pro\n"
        "basic@example.com,UTC,2026-03-05T12:00:00Z,basic\n"
    )
    dripline(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        while (due := next_due(project)) is not None and due[2] <= 2:
            assert dripline(env, "run", "--once", "--now", due[0]).returncode == 0
        step4 = datetime.fromisoformat(due_of(project, "basic@example.com", 4))
        outage_over = (step4 + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for _ in range(2):  # the pass after the outage, and one more at the same moment
            ran = dripline(env, "run", "--once", "--now", outage_over)
            assert ran.returncode == 0, ran.stdout + ran.stderr
    got = received_steps(handler)
    assert sorted(got["pro@example.com"]) == [1, 2, 3]
    assert sorted(got["basic@example.com"]) == [1, 2, 4]
    with sqlite3.connect(project / "dripline.db") as db:
        (status,) = db.execute(
            "SELECT d.status FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id "
            "JOIN subscribers s ON s.id = e.subscriber_id "
            "WHERE s.email = 'basic@example.com' AND d.step = 3"
        ).fetchone()
    assert status == "skipped"
    # The rest go on later days, as after any late send.
    step5 = datetime.fromisoformat(due_of(project, "basic@example.com", 5))
    sent4 = datetime.fromisoformat(outage_over)
    assert timedelta(days=1) <= step5 - sent4 <= timedelta(days=4)
    assert datetime.fromisoformat(due_of(project, "pro@example.com", 4)) > sent4


SAMPLES_WITH_TYPED_VALUES = """\
[[subscriber]]
label = "Big"
email = "big@example.com"
name = "Big Co"
seats = 10
vip = false

[[subscriber]]
label = "Small"
email = "small@example.com"
seats = 2
vip = true
"""


def test_check_sees_sample_attributes_as_stored_text_with_the_standard_fields(project, env):
    # Real subscribers' attributes are text; samples typed in TOML must not let an
    # expression pass `check` that fails for every real subscriber (probe MEDIUM 5).
    folder = project / "campaigns" / "ketamine-therapy"
    (folder / "preview.toml").write_text(SAMPLES_WITH_TYPED_VALUES)
    add_front_matter(project, STEP3, 'when = "subscriber.seats > 5"')
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    findings = json.loads(checked.stdout)
    assert checked.returncode == 1
    errors = [f for f in findings if f["rule"] == "when"]
    assert len(errors) == 2 and {f["line"] for f in errors} == {2}
    assert all("'>' not supported" in f["message"] for f in errors)
    typed = {
        (f["file"].rsplit("/", 1)[-1], f["line"]) for f in findings if f["rule"] == "sample-value"
    }
    assert typed == {
        ("preview.toml", 5),
        ("preview.toml", 6),
        ("preview.toml", 11),
        ("preview.toml", 12),
    }
    # Text compared the documented ways, and the standard fields present as at send time
    # (probe MEDIUM 5b): name '' when not on file, timezone none when not set.
    path = project / STEP3
    path.write_text(path.read_text().replace("subscriber.seats > 5", "subscriber.seats | int > 5"))
    add_front_matter(
        project,
        "campaigns/ketamine-therapy/04-fewer-side-effects.md",
        "when = \"subscriber.vip == 'true'\"",
    )
    add_front_matter(
        project,
        "campaigns/ketamine-therapy/05-holistic-health.md",
        "when = \"subscriber.name != ''\"",
    )
    add_front_matter(
        project,
        "campaigns/ketamine-therapy/06-other-therapies.md",
        'when = "subscriber.timezone is none"',
    )
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    assert checked.returncode == 0, checked.stdout
    assert not [f for f in json.loads(checked.stdout) if f["rule"] == "when"]
    campaign = load_campaign(folder)
    from dripline.preview._timeline import sample_steps
    from dripline.samples import load_samples

    predicted = {
        s.email: sorted(step.number for step, verdict in s.outcomes if verdict == "gets")
        for s in sample_steps(campaign, load_samples(campaign, "https://news.example.com"))
    }
    assert predicted == {
        "big@example.com": [1, 2, 3, 5, 6],
        "small@example.com": [1, 2, 4, 6],
    }
    # The same people, imported from a CSV, get exactly those steps from `dripline run`.
    (project / "people.csv").write_text(
        "email,name,subscribed_at,seats,vip\n"
        "big@example.com,Big Co,2026-03-05T12:00:00Z,10,false\n"
        "small@example.com,,2026-03-05T12:00:00Z,2,true\n"
    )
    imported = dripline(
        env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy"
    )
    assert imported.returncode == 0, imported.stderr
    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        for _ in range(20):
            if (due := next_due(project)) is None:
                break
            ran = dripline(env, "run", "--once", "--now", due[0])
            assert ran.returncode == 0, ran.stdout + ran.stderr
    assert next_due(project) is None
    assert {k: sorted(v) for k, v in received_steps(handler).items()} == predicted


def test_the_int_filter_compares_text_attributes_as_numbers_in_the_sandbox():
    step = type("S", (), {"when": "subscriber.seats | int > 5", "path": Path("x")})
    assert step_applies(step, "a@example.com", {"seats": "10"})
    assert not step_applies(step, "a@example.com", {"seats": "2"})
    assert not step_applies(step, "a@example.com", {"seats": "many"})  # int() of text: 0


def step3_dues(project: Path) -> list[datetime]:
    with sqlite3.connect(project / "dripline.db") as db:
        rows = db.execute("SELECT due_at FROM deliveries WHERE step = 3").fetchall()
    return [datetime.fromisoformat(due).replace(tzinfo=UTC) for (due,) in rows]


def test_a_when_failing_at_send_time_backs_off_more_each_time_and_logs_once_per_step(project, env):
    # No `plan` for anyone: step 3's `when` fails for all three (probe LOW 11). Each pass
    # defers them further out (5, 10, 20 minutes...) and says so in one line for the step.
    add_front_matter(project, STEP3, "when = \"subscriber.plan == 'pro'\"")
    (project / "people.csv").write_text(
        "email,timezone,subscribed_at\n"
        + "".join(f"p{i}@example.com,UTC,2026-03-05T12:00:00Z\n" for i in range(3))
    )
    dripline(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    handler = RecordingHandler()
    waits: list[timedelta] = []
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        while (due := next_due(project)) is not None and due[2] <= 2:
            assert dripline(env, "run", "--once", "--now", due[0]).returncode == 0
        for _ in range(4):
            due = next_due(project)
            assert due is not None and due[2] == 3
            # Past the latest of the three (each back-off has its own jitter).
            moment = max(step3_dues(project)) + timedelta(seconds=1)
            ran = dripline(env, "run", "--once", "--now", moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
            assert ran.returncode == 0, ran.stdout + ran.stderr
            lines = [line for line in ran.stderr.splitlines() if "cannot be evaluated" in line]
            assert len(lines) == 1, ran.stdout + ran.stderr
            assert "3 deliveries deferred" in lines[0] and "03-neuroplasticity.md" in lines[0]
            waits.append(min(step3_dues(project)) - moment)
    assert all(received == [1, 2] for received in received_steps(handler).values())
    assert waits[0] >= timedelta(minutes=5)
    assert all(later > earlier for earlier, later in itertools.pairwise(waits))
    with sqlite3.connect(project / "dripline.db") as db:
        rows = db.execute("SELECT status, attempts FROM deliveries WHERE step = 3").fetchall()
    assert rows == [("scheduled", 4)] * 3


def test_check_refuses_a_string_repetition_over_the_sandbox_limit(project, env):
    # Probe-18b: `*` on a string was unbounded (10**8 passed check at 675 MB; 10**9 took 6 GB
    # before the 5 s budget fired). 100,000 is small enough to have passed before, quietly.
    add_front_matter(project, STEP3, "when = \"(subscriber.email ~ 'x') * 100000 == ''\"")
    checked = dripline(env, "check", "ketamine-therapy", "--json")
    found = [f for f in json.loads(checked.stdout) if f["rule"] == "when"]
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert len(found) == 3 and {(f["severity"], f["line"]) for f in found} == {("error", 2)}
    assert all("the sandbox allows 10,000" in f["message"] for f in found)
    assert check_when("'-' * 40 == subscriber.rule") is None  # small repetitions stay fine


_AT_MOST_2_GB = (
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
    "sys.argv = ['dripline', *sys.argv[1:]]; runpy.run_module('dripline.cli', run_name='__main__')"
)


def test_a_gigabyte_repetition_defers_the_delivery_before_allocating(project, env):
    # The expression would build 16 GB per delivery; the worker runs under a 2 GB address
    # space limit, so before the bound Python tried and failed (MemoryError; without the
    # limit, gigabytes). Now the sandbox refuses the size first: deferred like a broken
    # campaign file, naming file:line and the limit.
    add_front_matter(project, STEP3, "when = \"(subscriber.email ~ 'x') * 10**9 == ''\"")
    (project / "people.csv").write_text(
        "email,timezone,subscribed_at\nann@example.com,UTC,2026-03-05T12:00:00Z\n"
    )
    dripline(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        for _ in range(3):
            due = next_due(project)
            assert due is not None
            ran = subprocess.run(
                [sys.executable, "-c", _AT_MOST_2_GB, "run", "--once", "--now", due[0]],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert ran.returncode == 0 and "Traceback" not in ran.stderr, ran.stderr
    assert sorted(received_steps(handler)["ann@example.com"]) == [1, 2]
    with sqlite3.connect(project / "dripline.db") as db:
        status, error = db.execute(
            "SELECT status, last_error FROM deliveries WHERE step = 3"
        ).fetchone()
    assert status == "scheduled"
    assert "03-neuroplasticity.md:2" in error and "the sandbox allows 10,000" in error
