"""A/B winners end to end: real `dripline run` processes send a two-variant step to an
aiosmtpd server, people's clicks are recorded through serve's /c/TOKEN route (the app
over the same SQLite file, its clock a day on), and the next wave's Subject lines, the
database and `dripline report` are read back. Also `check` on hostile winner_after."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import warnings
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import lxml.html
import pytest
from results_support import DRIPLINE, SECRET, SLUG, links, parse, parts, track
from smtp_servers import RecordingHandler, running_server

from dripline.campaign import load_campaign
from dripline.errors import CampaignError
from dripline.serve import create_app
from dripline.settings import Settings

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


def _experiment(project: Path, winner_after: object) -> None:
    step = project / STEP1
    step.write_text(
        step.read_text().replace(SUBJECT_LINE, f'subjects = ["{VARIANTS[0]}", "{VARIANTS[1]}"]')
    )
    toml = project / "campaigns" / SLUG / "campaign.toml"
    toml.write_text(toml.read_text() + f"\n[experiment]\nwinner_after = {winner_after}\n")


def _env(project: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_DATABASE_URL": f"sqlite:///{project / 'dripline.db'}",
        "DRIPLINE_SECRET_KEY": SECRET,
        "DRIPLINE_BASE_URL": BASE,
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
        "DRIPLINE_SENDER": f"smtp://127.0.0.1:{port}?timeout=20",
    }


def _dripline(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(DRIPLINE), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
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


def _clicks(project: Path, messages: list, share: dict[str, float], at: datetime) -> Counter:
    """People click the first link of ``share`` of each variant's messages through serve's
    /c/TOKEN route (a desktop browser, ``at``); a scanner clicks every other B message."""
    settings = Settings(
        root=project,
        database_url=f"sqlite:///{project / 'dripline.db'}",
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
    decided = (
        f"winner: {VARIANTS[0]!r}, decided 2026-03-06T13:00:30+00:00 on "
        f"{clicked[VARIANTS[0]]} of {sent_first[VARIANTS[0]]} vs "
        f"{clicked[VARIANTS[1]]} of {sent_first[VARIANTS[1]]}"
    )
    assert (decided if margin != "equal" else "no winner yet") in text
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
        assert experiment["winner"]["decided_at"].startswith("2026-03-06T13:00:30")
        # The sends made because it won are shown apart from the test's (probe-18b LOW 1).
        assert rows[VARIANTS[0]]["since_winner"] == {"sent": 200, "clicks": 0}
        assert rows[VARIANTS[1]]["since_winner"] == {"sent": 0, "clicks": 0}
        assert "since the winner: 200 sent" in text
        assert not experiment["split_resumed"] and experiment["winner"]["in_step"]
        assert f"Winner: “{VARIANTS[0]}”, decided" in " ".join(section.split())
        assert decided.split(" on ")[1] in " ".join(section.split())
    else:
        # No significant difference: no winner, and the split goes on.
        assert winners == [] and experiment["winner"] is None
        assert set(later) == set(VARIANTS) and all(n >= 60 for n in later.values())
        assert "No winner yet" in section


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
