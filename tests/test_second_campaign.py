"""A marketer adds a campaign: the suite's campaign-dependent tests still pass.

The repository is copied (campaigns/, templates/, tests/), a second campaign whose slug
sorts first is added, and those tests run against the copy in a pytest of their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dripline.campaign import campaign_slugs

REPO = Path(__file__).resolve().parent.parent
SECOND = REPO / "tests" / "fixtures" / "campaigns" / "a-welcome"
# Tests that read campaigns/ of the project (count them, check all, list them, render).
CAMPAIGN_DEPENDENT = [
    "tests/test_campaign_errors.py",
    "tests/test_lint.py",
    "tests/test_cli_preview.py",
    "tests/test_cli_serve.py",
    "tests/test_preview_app.py",
    "tests/test_cli_render.py",
    "tests/test_cli_subscribers.py",
    "tests/test_demo.py",
]


def test_campaign_dependent_tests_pass_with_a_second_campaign(tmp_path: Path):
    copy = tmp_path / "repo"
    for name in ("campaigns", "templates", "tests"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "pyproject.toml", copy)
    shutil.copytree(SECOND, copy / "campaigns" / SECOND.name)
    assert campaign_slugs(copy / "campaigns")[0] == SECOND.name != "ketamine-therapy"
    # No DRIPLINE_* settings, no PostgreSQL reset under the outer run, no service rule:
    # these tests need none of them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIPLINE_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CAMPAIGN_DEPENDENT],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary
