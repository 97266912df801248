"""``dripline demo``: the whole sequence on embedded defaults, with a simulated clock.

Everything lives in ``demo/`` under the project root: a SQLite file, a Maildir
outbox and a generated signing key. A few sample subscribers in different time
zones are enrolled; the clock then jumps from one due time to the next, running
one dispatch pass at each, until every email has gone out.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from .campaign import Campaign
from .dispatch import PassReport
from .runtime import dispatcher_for
from .settings import Settings
from .store import (
    Delivery,
    NewSubscriber,
    TimelineEntry,
    normalize_email,
    open_store,
    subscribe,
    subscriber_timeline,
)
from .timetable import Timetable

__all__ = ["DEMO_PEOPLE", "DemoResult", "run_demo"]

# (email, name, time zone): one per continent, so the timetable's local times show.
DEMO_PEOPLE = [
    ("maria@example.com", "Maria Lopez", "America/Los_Angeles"),
    ("oliver@example.com", "Oliver Smith", "Europe/London"),
    ("priya@example.com", "Priya Sharma", "Asia/Kolkata"),
    ("aroha@example.com", "Aroha Ngata", "Pacific/Auckland"),
]


@dataclass
class DemoResult:
    folder: Path
    outbox: Path
    database: Path
    timelines: dict[str, list[TimelineEntry]]
    zones: dict[str, str]
    report: PassReport
    passes: int


def demo_settings(settings: Settings) -> Settings:
    """The demo's own database, outbox and signing key, under ``demo/``."""
    folder = settings.root / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "secret_key"
    if not key_file.is_file():
        key_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        key_file.chmod(0o600)
    return replace(
        settings,
        database_url=f"sqlite:///{folder / 'dripline.db'}",
        sender_url=f"maildir:{folder / 'outbox'}",
        secret_key=settings.secret_key or key_file.read_text(encoding="utf-8").strip(),
        # The demo's mail stays in a local Maildir, sent from the sample campaign's
        # example.com addresses to example.com people: both guard rails may be waived.
        allow_local_links=True,
        allow_example_addresses=True,
    )


def _fresh(folder: Path) -> None:
    """Start over: an earlier demo's database and emails would confuse the counts."""
    for name in ("dripline.db", "dripline.db-wal", "dripline.db-shm"):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "outbox", ignore_errors=True)


def run_demo(settings: Settings, campaign: Campaign, start: datetime) -> DemoResult:
    settings = demo_settings(settings)
    folder = settings.root / "demo"
    _fresh(folder)
    engine = open_store(settings.effective_database_url, campaigns_dir=settings.campaigns_dir)
    table = Timetable.of(campaign)
    try:
        for address, name, zone in DEMO_PEOPLE:
            person = NewSubscriber(
                email=normalize_email(address),
                name=name,
                first_name=name.split()[0],
                timezone=zone,
                subscribed_at=start,
            )
            subscribe(engine, table, campaign.slug, person, source="demo", now=start)

        report = PassReport()
        passes = 0
        with dispatcher_for(settings) as dispatcher:
            while True:
                with engine.connect() as conn:
                    due = conn.scalar(
                        select(func.min(Delivery.due_at)).where(Delivery.status == "scheduled")
                    )
                if due is None:
                    break
                now = due.replace(tzinfo=UTC) if due.tzinfo is None else due
                report.add(dispatcher.dispatch_due(now))  # the clock jumps to the next due time
                passes += 1
        timelines = {
            address: subscriber_timeline(engine, campaign.slug, address)
            for address, _, _ in DEMO_PEOPLE
        }
    finally:
        engine.dispose()
    return DemoResult(
        folder=folder,
        outbox=folder / "outbox",
        database=folder / "dripline.db",
        timelines=timelines,
        zones={address: zone for address, _, zone in DEMO_PEOPLE},
        report=report,
        passes=passes,
    )


def local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M %Z")
