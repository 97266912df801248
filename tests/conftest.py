"""Shared fixtures: the real ketamine campaign and store URLs (SQLite file; PostgreSQL in CI)."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from dripline.campaign import Campaign, load_campaign
from dripline.store import make_engine, open_store
from dripline.timetable import Timetable

ROOT = Path(__file__).resolve().parent.parent
REPO = ROOT
POSTGRES_ENV = "DRIPLINE_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def campaign() -> Campaign:
    return load_campaign(ROOT / "campaigns" / "ketamine-therapy")


@pytest.fixture(scope="session")
def timetable(campaign: Campaign) -> Timetable:
    return Timetable.of(campaign)


def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "DROP TABLE IF EXISTS clicks, opens, events, tracked_links, experiment_winners, "
                "campaign_revisions, suppressions, bounce_events, consents, "
                "signup_requests, deliveries, enrollments, workers, rate_limits, subscribers, "
                "alembic_version"
            )
        )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a real SQLite file, or the CI PostgreSQL (skipped if unset)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dripline.db'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (see .ci/postgres.sh)")
    _reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'dripline.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_store(db_url)
    yield engine
    engine.dispose()


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the repository's campaigns/ and templates/ that a test may edit."""
    for name in ("campaigns", "templates"):
        shutil.copytree(REPO / name, tmp_path / name)
    return tmp_path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (DRIPLINE_REQUIRE_SERVICES=1) a test skipped for a missing service fails the run.

    .ci/run starts PostgreSQL, Postfix and Chromium first; if an install step broke,
    the tests that need them must not pass by being skipped.
    """
    if os.environ.get("DRIPLINE_REQUIRE_SERVICES") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(
            f"DRIPLINE_REQUIRE_SERVICES=1 but {len(skipped)} test(s) were skipped: "
            "a service CI should have started is missing",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def preview_server(project: Path):
    """The real preview server (uvicorn on 127.0.0.1, a free port) over a copy of the project."""
    import threading

    from dripline.preview import PreviewServer

    server = PreviewServer(project, base_url="http://127.0.0.1:8000", port=0)
    thread = threading.Thread(target=server.run, name="preview-server", daemon=True)
    thread.start()
    assert server.started.wait(15), "the preview server did not start"
    yield server
    server.stop()
    thread.join(15)
    assert not thread.is_alive(), "the preview server did not stop"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright (never a downloaded browser)."""
    chromium = os.environ.get("CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
    args = os.environ.get("CHROMIUM_ARGS", "--no-sandbox --disable-gpu --disable-dev-shm-usage")
    if not Path(chromium).is_file():
        pytest.skip(f"no Chromium at {chromium} (run .ci/chromium.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, args=shlex.split(args), timeout=60_000
        )
        yield launched
        launched.close()
