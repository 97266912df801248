"""A runaway template (two nested range(100000) loops) cannot hold the engine."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline.cli import main
from dripline.dispatch import CampaignLibrary, Dispatcher
from dripline.runtime import unsubscribe_link_maker
from dripline.settings import Settings
from dripline.store import (
    Decision,
    SqlDeliveryQueue,
    judge_experiment,
    make_engine,
    open_store,
)
from dripline.timetable import Timetable
from sender.memory import MemorySender

T0 = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
RUNAWAY = "\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"


def make_runaway(project: Path) -> Path:
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    step.write_text(step.read_text() + RUNAWAY)
    return step


def subscribe(project: Path, address: str, campaign: str) -> None:
    args = ["--root", str(project), "subscribe", address, "--campaign", campaign]
    result = CliRunner().invoke(
        main, [*args, "--tz", "America/Los_Angeles", "--at", T0.isoformat()]
    )
    assert result.exit_code == 0, result.output


def step1(project: Path) -> dict[str, str]:
    db = sqlite3.connect(project / "dripline.db")
    found = dict(
        db.execute(
            "SELECT e.campaign, d.status FROM deliveries d "
            "JOIN enrollments e ON e.id = d.enrollment_id WHERE d.step = 1"
        )
    )
    db.close()
    return found


def one_pass(project: Path, outbox: str):
    """One dispatch pass as `dripline run` makes it, with a render budget of 1 s; its
    report (what was sent is in ``MemorySender.outbox(outbox)``)."""
    settings = Settings(root=project, secret_key="a-long-enough-test-secret")
    engine = open_store(settings.effective_database_url)
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir, render_budget=1.0)
    queue = SqlDeliveryQueue(engine, lambda slug: Timetable.of(library.definition(slug)))
    MemorySender.clear(outbox)
    dispatcher = Dispatcher(queue, MemorySender(outbox), library, unsubscribe_link_maker(settings))
    try:
        return dispatcher.dispatch_due(T0 + timedelta(minutes=1))
    finally:
        queue.close()
        engine.dispose()


def test_a_runaway_step_is_deferred_and_other_campaigns_still_go(project: Path):
    shutil.copytree(project / "campaigns/ketamine-therapy", project / "campaigns/second")
    step = make_runaway(project)
    subscribe(project, "slow@example.com", "ketamine-therapy")
    subscribe(project, "fine@example.com", "second")
    report = one_pass(project, "budget")
    assert (report.sent, report.deferred, report.failed) == (1, 1, 0), report.summary()
    assert [m.recipients for m in MemorySender.outbox("budget")] == [("fine@example.com",)]
    (error,) = report.errors
    assert f"{step}:" in error and "render budget (1 s)" in error
    assert step1(project) == {"ketamine-therapy": "scheduled", "second": "sent"}


def test_sigterm_while_a_template_runs_away_stops_the_pass_at_once(project: Path):
    make_runaway(project)
    subscribe(project, "slow@example.com", "ketamine-therapy")
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_SENDER": f"maildir:{project / 'outbox'}",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",  # the sample campaign, into a test Maildir
        "DRIPLINE_RENDER_BUDGET": "600",  # far longer than the guard below
    }
    process = subprocess.Popen(
        [*DRIPLINE, "run", "--once", "--now", (T0 + timedelta(minutes=1)).isoformat()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while step1(project)["ketamine-therapy"] != "claimed":  # rendering starts right after
        assert time.monotonic() < deadline and process.poll() is None, "it never claimed"
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)  # a guard: without the fix this hangs
    assert process.returncode == 0, output
    assert "stopped by a signal" in output and "released 1" in output
    assert step1(project) == {"ketamine-therapy": "scheduled"}
    assert Counter(p.name for p in (project / "outbox").rglob("*") if p.is_file()) == Counter()


# Jinja folds a constant expression while it compiles the template: this one makes the
# step's compile itself run away (a trillion empty slices summed), before any render.
RUNAWAY_COMPILE = '\n{{ "x" | slice(1000000000000) | sum(start=[]) }}\n'


# A step's `when` that runs away (evaluated per subscriber, before the render).
RUNAWAY_WHEN = "when = \"range(100000)|select('in', range(100000)|reverse|list)|list\"\n"


def in_a_jinja_filter(thread: threading.Thread) -> bool:
    """Whether ``thread`` is running a Jinja filter now (the runaway ``slice``/``select``)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if Path(frame.f_code.co_filename).match("jinja2/filters.py"):
            return True
        frame = frame.f_back
    return False


def runaway_compile(text: str) -> str:
    return text + RUNAWAY_COMPILE


def runaway_when(text: str) -> str:
    return text.replace("+++\n", "+++\n" + RUNAWAY_WHEN, 1)


def runaway_render(text: str) -> str:
    # The `when`'s runaway filter in the body (the watcher below looks for a filter).
    return text + "\n{{ " + RUNAWAY_WHEN.split('"')[1] + "|length }}\n"


# An A/B step whose second subject runs away while it compiles (see RUNAWAY_COMPILE); the
# first is fine. The test stores that variant as the winner, so it is compiled.
RUNAWAY_SUBJECTS = ["Rapid relief", "Rapid" + RUNAWAY_COMPILE.strip().replace('"x"', "'x'")]


def runaway_variant(text: str) -> str:
    line = 'subject = "Reason 1 of 6: Rapid relief from symptoms"'
    assert line in text
    return text.replace(line, "subjects = [" + ", ".join(f'"{s}"' for s in RUNAWAY_SUBJECTS) + "]")


def runaway_variant_won(project: Path) -> None:
    """Store the runaway second subject (RUNAWAY_SUBJECTS) as the A/B test's winner."""
    engine = make_engine(f"sqlite:///{project / 'dripline.db'}")
    try:
        judge_experiment(
            engine,
            "ketamine-therapy",
            "rapid-relief",
            RUNAWAY_SUBJECTS,
            decide=lambda tallies: Decision(2, 4.0, 0.0001),
            now=T0,
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize("edit", [runaway_compile, runaway_when, runaway_render, runaway_variant])
def test_sigterm_while_a_step_compile_when_or_render_runs_away_hands_the_delivery_back(
    project: Path, edit, caplog: pytest.LogCaptureFixture
):
    subscribe(project, "slow@example.com", "ketamine-therapy")
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    step.write_text(edit(step.read_text()))  # saved after the subscription
    if edit is runaway_variant:  # the runaway subject has won: everyone gets it
        runaway_variant_won(project)
    env = {
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_SENDER": f"maildir:{project / 'outbox'}",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
        # Without the signal the compile, `when` or render stops here, as a step "too slow" (held
        # until edited, and logged so): a guard that cannot look like the signal's outcome.
        # Shorter than the runaway `when`, which ends by itself (True) after about 30 s here.
        "DRIPLINE_RENDER_BUDGET": "10",
    }
    problems: list[str] = []
    before = signal.getsignal(signal.SIGTERM)  # pytest's (or a mutation tool's) handler

    def terminate_once_claimed() -> None:
        # The run (in this process, main thread) installs its SIGTERM handler before it
        # claims; the signal goes once the runaway filter runs (a signal before the render
        # would hand the claim back untried, testing something else).
        deadline = time.monotonic() + 60
        while (
            step1(project)["ketamine-therapy"] != "claimed"
            or signal.getsignal(signal.SIGTERM) is before
            or not in_a_jinja_filter(threading.main_thread())
        ):
            if time.monotonic() > deadline:
                problems.append("it never claimed")
                return
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=terminate_once_claimed)
    watcher.start()
    when = (T0 + timedelta(minutes=1)).isoformat()
    with caplog.at_level(logging.WARNING, logger="dripline"):
        result = CliRunner(env=env).invoke(main, ["run", "--once", "--now", when])
    watcher.join()
    assert problems == []
    # Stopped by the signal, not by the budget: a compile, `when` or render that ignored it
    # would run until the budget and then be called too slow (and held until edited).
    assert not [r for r in caplog.records if "render budget" in r.getMessage()], caplog.text
    assert result.exit_code == 0, result.output
    assert "stopped by a signal" in result.output, result.output
    assert "deferred 0, failed 0" in result.output and "released 1" in result.output, result.output
    assert step1(project) == {"ketamine-therapy": "scheduled"}
    assert not (project / "outbox").exists() or not any(
        p.is_file() for p in (project / "outbox").rglob("*")
    )


# Jinja folds a constant expression while it compiles the layout, before any render.
RUNAWAY_LAYOUT = '<p>{{ "x" | slice(1000000000000) | sum(start=[]) }}</p>\n'
BROKEN_LAYOUT = "{% if campaign.name %}\n"
# A file the layout imports is compiled as each message renders: broken, it is still the
# campaign's files (deferred), not the subscriber's data (failed).
BROKEN_IMPORT = '{% import "_macros.html" as m %}{{ m.foot() }}\n'


@pytest.mark.parametrize(
    "fault", [RUNAWAY_LAYOUT, BROKEN_LAYOUT, BROKEN_IMPORT], ids=["runaway", "broken", "import"]
)
def test_a_layout_that_runs_away_or_breaks_defers_its_campaign_and_the_others_go(
    project: Path, fault: str
):
    """`dripline run --once` a month on, every step overdue (so the claim re-times later
    steps from the campaign's timetable): the campaign whose layout does not compile (in
    time) has its due delivery deferred, with the layout's file and line; another
    campaign on another layout is sent in the same pass, and the pass ends."""
    second = project / "campaigns/second"
    shutil.copytree(project / "campaigns/ketamine-therapy", second)
    toml = second / "campaign.toml"
    toml.write_text(toml.read_text().replace('layout = "base"', 'layout = "plain"', 1))
    templates = project / "templates"
    for suffix in ("html", "txt"):
        shutil.copy(templates / f"base.{suffix}", templates / f"plain.{suffix}")
    layout = templates / "base.html"
    lines = layout.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "{{ campaign.postal_address }}" in line)
    layout.write_text("".join([*lines[: at + 1], fault, *lines[at + 1 :]]))
    macros = templates / "_macros.html"
    macros.write_text("{% macro foot() %}\n<p>{{ 1 + }}</p>\n{% endmacro %}\n")
    subscribe(project, "slow@example.com", "ketamine-therapy")
    subscribe(project, "fine@example.com", "second")
    env = {
        "DRIPLINE_SECRET_KEY": "a-long-enough-test-secret",
        "DRIPLINE_RENDER_BUDGET": "1",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }
    args = ["--root", str(project), "run", "--once", "--sender", "memory:layout"]
    MemorySender.clear("layout")
    result = CliRunner(env=env).invoke(
        main, [*args, "--now", (T0 + timedelta(days=30)).isoformat()]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert [m.recipients for m in MemorySender.outbox("layout")] == [("fine@example.com",)]
    assert step1(project) == {"ketamine-therapy": "scheduled", "second": "sent"}
    db = sqlite3.connect(project / "dripline.db")
    ((error,),) = db.execute(
        "SELECT last_error FROM deliveries WHERE status = 'scheduled' AND step = 1"
    )
    db.close()
    if fault is BROKEN_IMPORT:
        assert error.startswith(f"campaign: {macros}:2: template error: "), error
    else:
        assert error.startswith(f"campaign: {layout}:"), error
    if fault is RUNAWAY_LAYOUT:  # the line of the expression Jinja was working out
        assert error.startswith(
            f"campaign: {layout}:{at + 2}: compiling base.html took "
            "longer than the render budget (1 s)"
        ), error


def test_a_runaway_ab_subject_variant_is_deferred_at_the_subjects_line(project: Path):
    subscribe(project, "slow@example.com", "ketamine-therapy")
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    step.write_text(runaway_variant(step.read_text()))
    runaway_variant_won(project)  # the one subscriber gets it
    report = one_pass(project, "variant")
    assert (report.sent, report.deferred) == (0, 1), report.summary()
    line = (
        step.read_text()
        .splitlines()
        .index(
            next(line for line in step.read_text().splitlines() if line.startswith("subjects = "))
        )
        + 1
    )
    (error,) = report.errors
    assert f"{step}:{line}: compiling subject variant 2 took longer than the render budget" in (
        error
    ), error


RUNAWAY_EXPRESSION = "{{ 'x' | slice(1000000000000) | sum(start=[]) }}"


def runaway_subject(project: Path, step: Path) -> tuple[Path, str]:
    line = 'subject = "Reason 1 of 6: Rapid relief from symptoms"'
    edited = f'# a comment\n\nsubject = "Reason {RUNAWAY_EXPRESSION}"'
    step.write_text(step.read_text().replace(line, edited, 1))
    return step, "subject = "


def runaway_body(project: Path, step: Path) -> tuple[Path, str]:
    step.write_text(step.read_text() + f"\n- a\n- b\n\n{RUNAWAY_EXPRESSION}\n")
    return step, RUNAWAY_EXPRESSION


def runaway_include(project: Path, step: Path) -> tuple[Path, str]:
    footer = project / "templates/_footer.html"
    footer.write_text(f"<p>x</p>\n{RUNAWAY_EXPRESSION}\n")
    layout = project / "templates/base.html"
    address = "<p>{{ campaign.postal_address }}</p>"
    layout.write_text(layout.read_text().replace(address, address + '{% include "_footer.html" %}'))
    return footer, RUNAWAY_EXPRESSION


@pytest.mark.parametrize("edit", [runaway_subject, runaway_body, runaway_include])
def test_dispatch_names_the_line_of_a_runaway_in_a_subject_body_or_included_file(
    project: Path, edit
):
    """Jinja works out constant expressions as it compiles (a step, or a file the layout
    includes as it renders): the deferral names the file and line of the expression."""
    subscribe(project, "slow@example.com", "ketamine-therapy")
    step = project / "campaigns/ketamine-therapy/01-rapid-relief.md"
    path, needle = edit(project, step)
    report = one_pass(project, "where")
    assert (report.sent, report.deferred) == (0, 1), report.summary()
    lines = path.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if needle in text)
    (error,) = report.errors
    assert f": {path}:{line}: " in error and "took longer than the render budget (1 s)" in error, (
        error
    )
