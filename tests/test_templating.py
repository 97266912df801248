"""Templates that never finish (dripline/templating.py): one clear error, the rest still checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from jinja2 import DictLoader
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dripline._budget import BudgetExceeded, RenderBudget, RenderCancelled
from dripline.templating import RenderBudgetExceeded, template_cycle, time_budget

DRIPLINE = str(Path(sys.executable).with_name("dripline"))
SECOND = Path(__file__).resolve().parent / "fixtures" / "campaigns" / "a-welcome"
STEP = "campaigns/ketamine-therapy/03-neuroplasticity.md"
LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}"


def check(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIPLINE_")}
    return subprocess.run(
        [DRIPLINE, "--root", str(project), "check"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def insert_before_heading(path: Path, text: str) -> int:
    """Put ``text`` on its own line before the step's '## ' heading; its line number."""
    lines = path.read_text(encoding="utf-8").split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("## "))
    lines[at:at] = [text, ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return at + 1


def test_a_layout_that_includes_itself_is_one_error_naming_the_cycle(project):
    base = project / "templates" / "base.html"
    base.write_text('{% include "footer.html" %}\n' + base.read_text(encoding="utf-8"))
    (project / "templates" / "footer.html").write_text('<p>\n{% include "base.html" %}\n</p>\n')
    done = check(project)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert errors == [
        f"{base}:1: error: templates include or extend each other in a loop: "
        "base.html -> footer.html -> base.html"
    ]
    assert "RecursionError" not in done.stdout + done.stderr
    assert "ketamine-therapy: not loaded, 1 error(s)" in done.stdout


def test_a_step_including_a_looping_template_is_one_error_at_its_line(project):
    (project / "templates" / "tip.html").write_text('{% extends "tip.html" %}\n')
    line = insert_before_heading(project / STEP, '{% include "tip.html" %}')
    done = check(project)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert errors == [
        f"{project / STEP}:{line}: error: templates include or extend each other in a loop: "
        "(this email) -> tip.html -> tip.html"
    ]


def test_a_macro_calling_itself_is_one_error_for_the_step(project):
    line = insert_before_heading(
        project / STEP, "{% macro tip() %}{{ tip() }}{% endmacro %}{{ tip() }}"
    )
    done = check(project)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert errors == [
        f"{project / STEP}:{line}: error: a template or macro calls itself without end "
        "(RecursionError)"
    ]


def test_a_runaway_step_is_an_error_for_that_step_and_other_campaigns_are_checked(project):
    shutil.copytree(SECOND, project / "campaigns" / SECOND.name)
    line = insert_before_heading(project / STEP, LOOP)
    done = check(project, DRIPLINE_RENDER_BUDGET="0.5")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert errors == [
        f"{project / STEP}:{line}: error: rendering took longer than 0.5 s (the render budget, "
        "DRIPLINE_RENDER_BUDGET): a loop that never ends, or one far too large?"
    ]
    assert "a-welcome: 2 emails, 0 error(s)" in done.stdout
    assert "ketamine-therapy: 6 emails, 1 error(s)" in done.stdout


def test_a_runaway_layout_points_at_the_layout_file(project):
    base = project / "templates" / "base.txt"
    base.write_text(base.read_text(encoding="utf-8") + "\n" + LOOP + "\n")
    line = base.read_text(encoding="utf-8").count("\n")
    done = check(project, DRIPLINE_RENDER_BUDGET="0.3")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    # Every step renders the layout; the fault is reported once, at the loop's line.
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{base}:{line}: error: rendering took longer than 0.3 s")


def test_time_budget_works_in_any_thread_and_installs_no_hook():
    env = ImmutableSandboxedEnvironment(loader=DictLoader({"loop.html": LOOP}))
    caught: list[BaseException] = []

    def render() -> None:
        try:
            with time_budget(0.2):
                env.get_template("loop.html").render()
        except RenderBudgetExceeded as err:
            caught.append(err)

    thread = threading.Thread(target=render)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    (err,) = caught
    assert err.template == "loop.html" and err.template_line == 1
    assert sys.getprofile() is None


def test_nested_budgets_each_raise_for_themselves_and_share_one_watchdog():
    """The outer (dispatch's) budget firing inside an inner (render's) one is not
    translated by the inner one; one watchdog thread serves every budget."""
    env = ImmutableSandboxedEnvironment(loader=DictLoader({"loop.html": LOOP}))
    outer = RenderBudget(0.2)
    with pytest.raises(BudgetExceeded) as caught:
        outer.run(lambda: _render_within(env, 30.0))
    assert not isinstance(caught.value, RenderBudgetExceeded)
    with pytest.raises(RenderBudgetExceeded):
        RenderBudget(30.0).run(lambda: _render_within(env, 0.2))
    for _ in range(5):
        RenderBudget(1.0).run(lambda: None)
    watchdogs = [t for t in threading.enumerate() if t.name == "dripline-render-budget"]
    assert len(watchdogs) == 1


def test_a_budget_stops_code_that_swallows_the_interrupt():
    """Jinja folds a constant expression while it compiles a template, under `except
    Exception`, and folds it again in its optimizer: a compile that runs away catches the
    budget's interrupt, so the interrupt repeats until the guarded call is left."""
    env = ImmutableSandboxedEnvironment()
    runaway = '{{ "x" | slice(1000000000000) | sum(start=[]) }}'  # folded while compiling
    with pytest.raises(BudgetExceeded):
        RenderBudget(0.3).run(lambda: env.from_string(runaway))
    stop = threading.Event()
    stop.set()  # SIGTERM before the compile began
    with pytest.raises(RenderCancelled):
        RenderBudget(None).run(lambda: env.from_string(runaway), stop)
    assert RenderBudget(1.0).run(lambda: 42) == 42  # nothing left pending for this thread


def _render_within(env: ImmutableSandboxedEnvironment, seconds: float) -> str:
    with time_budget(seconds):
        return env.get_template("loop.html").render()


@pytest.mark.parametrize(
    ("templates", "start", "cycle"),
    [
        ({"a": '{% include "b" %}', "b": '{% extends "a" %}'}, ["a"], ["a", "b", "a"]),
        ({"a": '{% include "b" %}', "b": "done"}, ["a"], None),
        ({"a": '{% import "a" as x %}'}, ["a"], ["a", "a"]),
        ({"a": "{% include name %}"}, ["a"], None),  # chosen at render time: not followed
        ({"a": '{% include "missing" %}'}, ["a"], None),  # reported where it is used
    ],
)
def test_template_cycle(templates, start, cycle):
    env = ImmutableSandboxedEnvironment(loader=DictLoader(templates))
    assert template_cycle(env, start) == cycle
