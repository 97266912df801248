"""A/B winners end to end: real `dripline run` processes send a two-variant step to an
aiosmtpd server, people's clicks are recorded through serve's /c/TOKEN route (the app
over the same SQLite file, its clock a day on), and the next wave's Subject lines, the
database and `dripline report` are read back. Also `check` on hostile winner_after."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tomllib
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
from click.testing import CliRunner
from results_support import DRIPLINE, SECRET, SLUG, links, parse, parts, track
from smtp_servers import RecordingHandler, running_server

from dripline.campaign import load_campaign
from dripline.cli import main
from dripline.errors import CampaignError
from dripline.experiments import pick_winner
from dripline.serve import create_app
from dripline.settings import Settings
from dripline.store import experiment_winners, make_engine, read_transaction, variant_tallies

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

BASE = "https://news.example.com"
STEP1 = "campaigns/ketamine-therapy/01-rapid-relief.md"
SUBJECT_LINE = 'subject = "Reason 1 of 6: Rapid relief from symptoms"'
VARIANTS = ("Rapid relief, variant A", "Rapid relief, variant B")
T0 = datetime(2026, 3, 5, 12, tzinfo=UTC)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)


def _experiment(project: Path, winner_after: object, extra: str = "") -> None:
    step = project / STEP1
    step.write_text(
        step.read_text().replace(SUBJECT_LINE, f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]')
    )
    toml = project / "campaigns" / SLUG / "campaign.toml"
    toml.write_text(toml.read_text() + f"\n[experiment]\nwinner_after = {winner_after}\n{extra}")


def _env(project: Path, port: int, db_url: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_DATABASE_URL": db_url or f"sqlite:///{project / 'dripline.db'}",
        "DRIPLINE_SECRET_KEY": SECRET,
        "DRIPLINE_BASE_URL": BASE,
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
        "DRIPLINE_SENDER": f"smtp://127.0.0.1:{port}?timeout=20",
    }


def _dripline(env: dict[str, str], *args: str) -> str:
    # In process (as `dripline` itself), so that mutation testing sees the passes reach
    # the dispatcher (each A/B test judged when ready, at the pass's own time).
    done = CliRunner(env=env).invoke(main, list(args))
    assert done.exit_code == 0, done.output
    return done.stdout


def _wave(env: dict[str, str], project: Path, name: str, people: int, at: datetime) -> None:
    """``people`` subscribe at ``at``; one `dripline run` pass 30 s later sends step 1."""
    csv = project / f"{name}.csv"
    stamp = at.isoformat().replace("+00:00", "Z")
    csv.write_text(
        "email,timezone,subscribed_at\n"
        + "".join(f"{name}{i}@example.com,UTC,{stamp}\n" for i in range(people))
    )
    _dripline(env, "import", str(csv), "--campaign", SLUG)
    _dripline(env, "run", "--once", "--now", (at + timedelta(seconds=30)).isoformat())


def _clicks(
    project: Path, messages: list, share: dict[str, float], at: datetime, db_url: str | None = None
) -> Counter:
    """People click the first link of ``share`` of each variant's messages through serve's
    /c/TOKEN route (a desktop browser, ``at``); a scanner clicks every other B message."""
    settings = Settings(
        root=project,
        database_url=db_url or f"sqlite:///{project / 'dripline.db'}",
        sender_url="memory:ab-clicks",
        base_url=BASE,
        secret_key=SECRET,
    )
    app = create_app(settings, clock=lambda: at)
    by_subject: dict[str, list] = {}
    for message in messages:
        by_subject.setdefault(str(message["Subject"]), []).append(message)
    clicked: Counter = Counter()
    with TestClient(app, follow_redirects=False) as client:
        for subject, group in by_subject.items():
            wanted = round(len(group) * share[subject])
            for index, message in enumerate(group):
                path = urlsplit(links(parts(message)[0], BASE, "c")[0]).path
                if index < wanted:
                    assert client.get(path, headers={"User-Agent": DESKTOP}).status_code == 302
                    clicked[subject] += 1
                if subject == VARIANTS[1] and index % 2:  # machine clicks never count
                    scanner = {"User-Agent": "Mozilla/5.0 BingPreview/1.0b"}
                    assert client.get(path, headers=scanner).status_code == 302
    app.state.service.engine.dispose()
    return clicked


def _documented_experiment() -> dict:
    """The ``experiment`` example of docs/contracts.md (an indented block in its prose)."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "contracts.md").read_text()
    found = re.search(r'^    "experiment": (\{\n.*?^    \})$', doc, re.S | re.M)
    assert found, "docs/contracts.md lost its experiment example"
    return json.loads(found.group(1))


@pytest.mark.parametrize("margin", ["clear", "equal", "reordered"])
def test_the_winner_is_chosen_after_the_threshold_only_for_a_clear_margin(project, margin):
    """``reordered``: the clear margin, with the step's subjects swapped after the clicks
    and before the decision (probe-18b HIGH 1): the subject clicked still wins, by text."""
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, 100)
    handler = RecordingHandler(pipelining=True)
    with running_server(handler) as server:
        env = _env(project, server.port)
        _wave(env, project, "first", 300, T0)
        first = [parse(item.data) for item in handler.received]
        sent_first = Counter(str(m["Subject"]) for m in first)
        assert set(sent_first) == set(VARIANTS) and min(sent_first.values()) >= 100
        share = {VARIANTS[0]: 0.30, VARIANTS[1]: 0.30 if margin == "equal" else 0.05}
        clicked = _clicks(project, first, share, T0 + timedelta(days=1))
        if margin == "reordered":
            step = project / STEP1
            step.write_text(
                step.read_text().replace(
                    f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]',
                    f'subjects = ["{VARIANTS[1]}", "{VARIANTS[0]}"]',
                )
            )
        received = len(handler.received)
        _wave(env, project, "second", 200, T0 + timedelta(days=1, hours=1))
        second = [parse(item.data) for item in handler.received[received:]]
    assert len(second) == 200
    later = Counter(str(m["Subject"]) for m in second)
    with sqlite3.connect(project / "dripline.db") as db:
        winners = db.execute(
            "SELECT step_id, variant, subject, decided_at, p_value, tallies FROM experiment_winners"
        ).fetchall()
        recorded = Counter(
            variant
            for (variant,) in db.execute(
                "SELECT d.subject_variant FROM deliveries d JOIN enrollments e "
                "ON e.id = d.enrollment_id JOIN subscribers s ON s.id = e.subscriber_id "
                "WHERE d.step = 1 AND s.email LIKE 'second%'"
            )
        )
    report = json.loads(_dripline(env, "report", SLUG, "--json", "--out", str(project / "r.html")))
    experiment = report["steps"][0]["experiment"]
    rows = {v["subject"]: v for v in experiment["variants"]}
    for subject in VARIANTS:  # the report counts the same messages and people's clicks
        assert rows[subject]["sent"] == sent_first[subject] + later[subject]
        assert rows[subject]["clicks"] == clicked[subject]
        low, high = rows[subject]["ci_low"], rows[subject]["ci_high"]
        assert low < rows[subject]["click_rate"] < high
    text = _dripline(env, "report", SLUG)
    assert "A/B subjects of 1. rapid-relief:" in text
    sent_then = f"{sent_first[VARIANTS[0]]}/{sent_first[VARIANTS[1]]} sent"
    decided = (
        f"winner: {VARIANTS[0]!r}, decided 2026-03-06T13:00:30+00:00 on "
        f"{clicked[VARIANTS[0]]} of {sent_first[VARIANTS[0]]} vs "
        f"{clicked[VARIANTS[1]]} of {sent_first[VARIANTS[1]]}"
    )
    assert (
        decided
        if margin != "equal"
        else f"judged 2026-03-06 on {sent_then}: no significant difference (p = "
    ) in text
    page = lxml.html.fromstring((project / "r.html").read_text())
    section = page.get_element_by_id("experiment-rapid-relief").text_content()
    if margin != "equal":
        # Every message after the threshold carries the winner (A, the subject people
        # clicked), recorded with its number in the list as it is: 2 once reordered.
        a, b = (1, 2) if margin == "clear" else (2, 1)
        assert later == {VARIANTS[0]: 200} and recorded == {a: 200}
        ((step_id, variant, subject, decided_at, p_value, tallies),) = winners
        assert (step_id, variant, subject) == ("rapid-relief", a, VARIANTS[0])
        assert decided_at.startswith("2026-03-06 13:00:30") and p_value < 0.05
        counts = {t["variant"]: (t["sent"], t["clicks"]) for t in json.loads(tallies)}
        assert counts == {
            a: (sent_first[VARIANTS[0]], clicked[VARIANTS[0]]),
            b: (sent_first[VARIANTS[1]], clicked[VARIANTS[1]]),
        }
        assert experiment["winner"]["variant"] == a
        assert experiment["judged"]["winner"] == a and experiment["click_window_seconds"] == 86400
        assert experiment["judged"]["counts"] == experiment["winner"]["counts"]
        documented = _documented_experiment()  # docs/contracts.md: the same keys, in order
        assert list(experiment) == list(documented)
        for key in ("winner", "judged"):
            assert list(experiment[key]) == list(documented[key])
        assert experiment["winner"]["decided_at"].startswith("2026-03-06T13:00:30")
        # The sends made because it won are shown apart from the test's (probe-18b LOW 1).
        assert rows[VARIANTS[0]]["since_winner"] == {"sent": 200, "clicks": 0}
        assert rows[VARIANTS[1]]["since_winner"] == {"sent": 0, "clicks": 0}
        assert "since the winner: 200 sent" in text
        assert not experiment["split_resumed"] and experiment["winner"]["in_step"]
        assert f"Winner: “{VARIANTS[0]}”, decided" in " ".join(section.split())
        assert decided.split(" on ")[1] in " ".join(section.split())
    else:
        # No significant difference: recorded once as no winner, and the split goes on.
        ((step_id, variant, subject, decided_at, p_value, tallies),) = winners
        assert (step_id, variant, subject) == ("rapid-relief", None, None)
        assert decided_at.startswith("2026-03-06 13:00:30") and p_value > 0.05
        assert experiment["winner"] is None
        judged = experiment["judged"]
        assert judged["winner"] is None and judged["p_value"] == p_value
        assert judged["decided_at"].startswith("2026-03-06T13:00:30")
        assert set(later) == set(VARIANTS) and all(n >= 60 for n in later.values())
        assert "the split goes on" in text.split(sent_then)[1].splitlines()[0]
        assert f"Judged 2026-03-06 on {sent_then}: no significant difference" in " ".join(
            section.split()
        )


def _to(messages: list, prefix: str) -> Counter:
    """The Subject lines of step 1 sent to the addresses starting with ``prefix``."""
    return Counter(
        str(m["Subject"])
        for m in messages
        if str(m["To"]).startswith(prefix) and str(m["Subject"]) in VARIANTS
    )


@pytest.mark.parametrize("margin", ["clear", "equal"])
def test_a_test_is_judged_once_after_the_click_window_and_never_again(project, db_url, margin):
    """Through real `dripline run --now` passes (SQLite file and PostgreSQL): nothing is
    judged before the 12-hour click window is over; then one decision is recorded on the
    messages sent before the window only. Equal clicks: "no significant difference", the
    split goes on, and counts that would now be significant crown no winner later."""
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, 100, 'click_window = "12h"\n')
    handler = RecordingHandler(pipelining=True)
    engine = make_engine(db_url)
    try:
        with running_server(handler) as server:
            env = _env(project, server.port, db_url)
            _wave(env, project, "first", 300, T0)
            first = [parse(item.data) for item in handler.received]
            sent_first = _to(first, "first")
            assert min(sent_first.values()) >= 100
            share = {VARIANTS[0]: 0.30, VARIANTS[1]: 0.05 if margin == "clear" else 0.30}
            clicked = _clicks(project, first, share, T0 + timedelta(hours=1), db_url)
            # 2 hours on: every variant has 100 sent, but not 12 hours ago: not judged yet.
            _wave(env, project, "early", 40, T0 + timedelta(hours=2))
            assert experiment_winners(engine, SLUG) == {}
            assert set(_to([parse(i.data) for i in handler.received], "early")) == set(VARIANTS)
            assert (
                "no winner yet (judged once, when every variant has 100 sent at least 12h ago)"
                in (_dripline(env, "report", SLUG))
            )
            # 13 hours on: the first wave's messages are 12 hours old; the early wave's not.
            # A pass that sends nothing of the step judges it (a list imported at once
            # would otherwise never get a verdict), at the pass's own time; campaigns
            # before it in name order (one without an A/B test, one that does not load)
            # do not stop it.
            plain = project / "campaigns" / "a-plain"
            shutil.copytree(project / "campaigns" / SLUG, plain)
            (plain / "campaign.toml").write_text(
                (plain / "campaign.toml").read_text().split("\n[experiment]")[0]
            )
            broken = project / "campaigns" / "b-broken"
            broken.mkdir()
            (broken / "campaign.toml").write_text("name = \n")
            _dripline(env, "run", "--once", "--now", (T0 + timedelta(hours=13)).isoformat())
            decision = experiment_winners(engine, SLUG)["rapid-relief"]
            assert decision.decided_at == T0 + timedelta(hours=13)
            shutil.rmtree(plain)
            shutil.rmtree(broken)
            _wave(env, project, "judge", 40, T0 + timedelta(hours=13))
            assert experiment_winners(engine, SLUG)["rapid-relief"] == decision
            assert [(t.variant, t.sent, t.clicks) for t in decision.tallies] == [
                (1, sent_first[VARIANTS[0]], clicked[VARIANTS[0]]),
                (2, sent_first[VARIANTS[1]], clicked[VARIANTS[1]]),
            ]
            judged_wave = _to([parse(i.data) for i in handler.received], "judge")
            if margin == "clear":
                assert (decision.variant, decision.subject) == (1, VARIANTS[0])
                assert judged_wave == {VARIANTS[0]: 40}
                return
            assert (decision.variant, decision.subject) == (None, None)
            assert decision.p_value > 0.05 and set(judged_wave) == set(VARIANTS)
            # Every person clicks variant A now: 12 hours later the counts would be
            # significant, but the step was judged: no winner, and the split goes on.
            everyone = {VARIANTS[0]: 1.0, VARIANTS[1]: 0.0}
            sent = [parse(i.data) for i in handler.received]
            _clicks(project, sent, everyone, T0 + timedelta(hours=14), db_url)
            late = T0 + timedelta(days=2)
            with read_transaction(engine) as conn:
                now_counts = variant_tallies(
                    conn, SLUG, "rapid-relief", sent_before=late - timedelta(hours=12)
                )
            assert pick_winner(now_counts, 2, 100) is not None
            _wave(env, project, "late", 40, late)
            assert set(_to([parse(i.data) for i in handler.received], "late")) == set(VARIANTS)
            assert experiment_winners(engine, SLUG) == {"rapid-relief": decision}
            text = _dripline(env, "report", SLUG)
    finally:
        engine.dispose()
    sent_then = f"{sent_first[VARIANTS[0]]}/{sent_first[VARIANTS[1]]} sent"
    assert (
        f"judged 2026-03-06 on {sent_then}: no significant difference (p = "
        f"{decision.p_value:.2g}); the split goes on"
    ) in text


@pytest.mark.parametrize("value", ["0", "-1", '"abc"', "12.5", "true"])
def test_a_hostile_winner_after_is_a_check_error_with_file_and_line(project, value):
    _experiment(project, value)
    with pytest.raises(CampaignError) as caught:
        load_campaign(project / "campaigns" / SLUG)
    assert "experiment.winner_after must be a whole number" in caught.value.message
    toml = project / "campaigns" / SLUG / "campaign.toml"
    line = next(
        n for n, text in enumerate(toml.read_text().splitlines(), 1) if "winner_after" in text
    )
    assert caught.value.path == toml and caught.value.line == line
    checked = subprocess.run(
        [str(DRIPLINE), "--root", str(project), "check", SLUG],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    assert f"campaign.toml:{line}: error: experiment.winner_after" in checked.stderr


def test_check_says_winner_after_needs_click_tracking_and_a_step_with_subjects(project):
    toml = project / "campaigns" / SLUG / "campaign.toml"
    toml.write_text(toml.read_text() + "\n[experiment]\nwinner_after = 500\n")
    found = json.loads(
        subprocess.run(
            [str(DRIPLINE), "--root", str(project), "check", SLUG, "--json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    mine = [(f["severity"], f["message"]) for f in found if f["rule"] == "experiment"]
    assert [severity for severity, _ in mine] == ["error", "warning"]
    assert "needs [tracking] clicks = true" in mine[0][1]
    assert "no step has subjects" in mine[1][1]


def _check(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DRIPLINE), "--root", str(project), "check", SLUG],
        capture_output=True,
        text=True,
    )


def _line_of(project: Path, key: str) -> int:
    toml = project / "campaigns" / SLUG / "campaign.toml"
    return next(n for n, text in enumerate(toml.read_text().splitlines(), 1) if key in text)


@pytest.mark.parametrize(
    "value", ['"soon"', '"0h"', '"366d"', '""', '"-1h"', "24", "true", '"24 hours"', '"\u0663h"']
)
def test_a_bad_click_window_is_one_check_error_with_file_and_line(project, value):
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, 500, f"click_window = {value}\n")
    with pytest.raises(CampaignError) as caught:
        load_campaign(project / "campaigns" / SLUG)
    line = _line_of(project, "click_window")
    assert caught.value.path == project / "campaigns" / SLUG / "campaign.toml"
    assert caught.value.line == line
    assert caught.value.message.startswith("experiment.click_window must be a duration")
    checked = _check(project)
    assert checked.returncode == 1 and "Traceback" not in checked.stderr
    errors = [text for text in checked.stderr.splitlines() if ": error: " in text]
    written = tomllib.loads(f"v = {value}")["v"]
    assert errors == [
        f"{caught.value.path}:{line}: error: experiment.click_window must be a duration such as "
        f'"24h", "90m" or "2d" (longer than 0, at most 365 days), not {written!r}'
    ]


@pytest.mark.parametrize(
    ("value", "window"),
    [
        (None, timedelta(hours=24)),
        ('"90m"', timedelta(minutes=90)),
        ('"1d 12h"', timedelta(hours=36)),
    ],
)
def test_click_window_takes_the_requeue_duration_syntax(project, value, window):
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, 500, "" if value is None else f"click_window = {value}\n")
    assert load_campaign(project / "campaigns" / SLUG).click_window == window


def test_check_warns_that_a_click_window_without_winner_after_does_nothing(project):
    toml = project / "campaigns" / SLUG / "campaign.toml"
    toml.write_text(toml.read_text() + '\n[experiment]\nclick_window = "12h"\n')
    checked = _check(project)
    line = _line_of(project, "click_window")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        f"campaign.toml:{line}: warning: experiment.click_window has no effect without "
        "winner_after" in checked.stdout + checked.stderr
    )


@pytest.mark.parametrize("winner_after", [1, 20, 99, 100])
def test_check_warns_that_a_small_winner_after_is_too_few_for_the_z_test(project, winner_after):
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, winner_after)
    found = json.loads(
        subprocess.run(
            [str(DRIPLINE), "--root", str(project), "check", SLUG, "--json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    mine = [f for f in found if f["rule"] == "experiment"]
    if winner_after >= 100:
        assert mine == []
        return
    (warning,) = mine
    assert warning["severity"] == "warning" and warning["line"] == _line_of(project, "winner_after")
    assert warning["file"].endswith("campaign.toml")
    assert f"winner_after = {winner_after} is too few" in warning["message"]
    assert "normal approximation needs several clicks per variant" in warning["message"]
    text = _check(project)
    assert (
        f"campaign.toml:{warning['line']}: warning: experiment.winner_after"
        in text.stdout + text.stderr
    )


@pytest.mark.parametrize(("window", "warned"), [('"1s"', True), ('"59m"', True), ('"1h"', False)])
def test_check_warns_that_a_click_window_under_an_hour_judges_unread_mail(project, window, warned):
    """probe-18c LOW b: a window of seconds judges messages nobody could have clicked yet."""
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, 500, f"click_window = {window}\n")
    found = json.loads(
        subprocess.run(
            [str(DRIPLINE), "--root", str(project), "check", SLUG, "--json"],
            capture_output=True,
            text=True,
        ).stdout
    )
    mine = [f for f in found if f["rule"] == "experiment"]
    if not warned:
        assert mine == []
        return
    (warning,) = mine
    assert warning["severity"] == "warning" and warning["line"] == _line_of(project, "click_window")
    assert "judge messages most people have not opened yet" in warning["message"]


def test_a_list_imported_at_once_gets_its_verdict_on_a_pass_with_nothing_to_send(project, db_url):
    """probe-18c MEDIUM C: every subscriber imported in one batch, step 1 sent at once, the
    clicks come in, and no message of the step is left to send: a later pass with
    nothing due of that step still gives the test its one look, and the report says so."""
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, 100, 'click_window = "12h"\n')
    handler = RecordingHandler(pipelining=True)
    engine = make_engine(db_url)
    try:
        with running_server(handler) as server:
            env = _env(project, server.port, db_url)
            _wave(env, project, "all", 300, T0)
            first = [parse(item.data) for item in handler.received]
            sent = _to(first, "all")
            clicked = _clicks(
                project,
                first,
                {VARIANTS[0]: 0.30, VARIANTS[1]: 0.05},
                T0 + timedelta(hours=1),
                db_url,
            )
            received = len(handler.received)
            at = (T0 + timedelta(hours=13)).isoformat().replace("+00:00", "Z")
            _dripline(env, "run", "--once", "--now", at)
            assert len(handler.received) == received  # nothing of the step went out
            decision = experiment_winners(engine, SLUG)["rapid-relief"]
    finally:
        engine.dispose()
    assert (decision.variant, decision.subject) == (1, VARIANTS[0])
    assert [(t.variant, t.sent, t.clicks) for t in decision.tallies] == [
        (1, sent[VARIANTS[0]], clicked[VARIANTS[0]]),
        (2, sent[VARIANTS[1]], clicked[VARIANTS[1]]),
    ]
    assert f"winner: {VARIANTS[0]!r}, decided" in _dripline(env, "report", SLUG)


def test_a_test_with_too_few_peoples_clicks_is_not_judged_until_they_arrive(project):
    """Probe 18c MEDIUM A: every variant has 100 sends older than the click window, but
    0 people's clicks (only a scanner's), then 4: not judged (a 0-vs-0 "no difference"
    would close the test for good), and the report says why; at 10 (5 per variant) the
    one look happens."""
    track(project, "https://landing.example.org/offer", goal=False)
    _experiment(project, 100, 'click_window = "12h"\n')
    handler = RecordingHandler(pipelining=True)
    engine = make_engine(f"sqlite:///{project / 'dripline.db'}")
    try:
        with running_server(handler) as server:
            env = _env(project, server.port)
            _wave(env, project, "first", 300, T0)
            first = [parse(item.data) for item in handler.received]
            assert min(_to(first, "first").values()) >= 100
            by = {v: [m for m in first if str(m["Subject"]) == v] for v in VARIANTS}
            none = dict.fromkeys(VARIANTS, 0.0)
            assert _clicks(project, first, none, T0 + timedelta(hours=1)) == Counter()
            for hours, clicks in ((13, 0), (15, 4)):
                if clicks:  # 4 people click variant A
                    _clicks(
                        project,
                        by[VARIANTS[0]][:4],
                        {VARIANTS[0]: 1.0},
                        T0 + timedelta(hours=hours - 1),
                    )
                _wave(env, project, f"w{clicks}x", 20, T0 + timedelta(hours=hours))
                assert experiment_winners(engine, SLUG) == {}
                report = _dripline(env, "report", SLUG)
                assert (
                    f"no winner yet (only {clicks} people's clicks so far; the test is judged "
                    "once there are at least 10)" in report
                )
                page = project / "r.html"
                experiment = json.loads(
                    _dripline(env, "report", SLUG, "--json", "--out", str(page))
                )["steps"][0]["experiment"]
                assert experiment["judged"] is None and experiment["waiting_for_clicks"] is True
                section = (
                    lxml.html.parse(str(page))
                    .getroot()
                    .get_element_by_id("experiment-rapid-relief")
                )
                assert (
                    f"only {clicks} people's clicks so far; the test is judged once there are "
                    "at least 10" in " ".join(section.text_content().split())
                )
                assert experiment["clicks_needed"] == 10
            # 6 more people click (4 A, 2 B): 10 in all, the one look happens.
            _clicks(project, by[VARIANTS[0]][4:8], {VARIANTS[0]: 1.0}, T0 + timedelta(hours=16))
            _clicks(project, by[VARIANTS[1]][:2], {VARIANTS[1]: 1.0}, T0 + timedelta(hours=16))
            _wave(env, project, "enough", 20, T0 + timedelta(hours=17))
            decision = experiment_winners(engine, SLUG)["rapid-relief"]
            assert [t.clicks for t in decision.tallies] == [8, 2]
            assert decision.decided_at == T0 + timedelta(hours=17, seconds=30)
            report = _dripline(env, "report", SLUG)
            assert "people's clicks so far" not in report
            experiment = json.loads(_dripline(env, "report", SLUG, "--json"))["steps"][0][
                "experiment"
            ]
            assert experiment["judged"] is not None and experiment["waiting_for_clicks"] is False
    finally:
        engine.dispose()
