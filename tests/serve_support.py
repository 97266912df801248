"""Shared set-up for the serve tests: a project copy, settings, the app, reading emails."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from dripline._flowed import unflow
from dripline.serve import create_app
from dripline.settings import Settings
from sender.memory import MemorySender

with warnings.catch_warnings():
    # Starlette 1.x suggests httpx2 for its TestClient; httpx still works.
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parent.parent
SLUG = "ketamine-therapy"
SECRET = "test-secret-key-0123456789abcdef"
BASE = "https://mail.example.org"
START = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # a Monday, 09:00 in Los Angeles


@dataclass
class Clock:
    """A settable clock for the app: tests move time instead of sleeping."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class Served:
    settings: Settings
    clock: Clock
    outbox: str
    apps: list[Starlette] = field(default_factory=list)

    def app(self, **options: Any) -> Starlette:
        app = create_app(self.settings, clock=self.clock, **options)
        self.apps.append(app)
        return app

    def client(self, **options: Any) -> TestClient:
        return TestClient(self.app(**options), follow_redirects=False)

    def emails(self) -> list[EmailMessage]:
        return [
            email.message_from_bytes(m.data, policy=email.policy.default)  # type: ignore[misc]
            for m in MemorySender.outbox(self.outbox)
        ]

    def close(self) -> None:
        for app in self.apps:
            app.state.service.engine.dispose()
        MemorySender.clear(self.outbox)


def make_served(tmp_path: Path, db_url: str, name: str) -> Served:
    for folder in ("campaigns", "templates"):
        if not (tmp_path / folder).exists():
            shutil.copytree(REPO / folder, tmp_path / folder)
    outbox = f"serve-{name}"
    MemorySender.clear(outbox)
    settings = Settings(
        root=tmp_path,
        database_url=db_url,
        sender_url=f"memory:{outbox}",
        base_url=BASE,
        secret_key=SECRET,
    )
    return Served(settings, Clock(), outbox)


def plain_body(message: EmailMessage) -> str:
    """The text part as a format=flowed reader shows it."""
    part = message.get_body(("plain",))
    assert part is not None
    assert part.get_param("format") == "flowed"
    return unflow(part.get_content())


def confirm_path(message: EmailMessage, base: str = BASE) -> str:
    match = re.search(re.escape(base) + r"(/confirm/[A-Za-z0-9_-]+)", plain_body(message))
    assert match, plain_body(message)
    return match.group(1)


def list_unsubscribe_path(message: EmailMessage, base: str = BASE) -> str:
    match = re.match(r"<" + re.escape(base) + r"(/u/[A-Za-z0-9_-]+)>", message["List-Unsubscribe"])
    assert match, message["List-Unsubscribe"]
    return match.group(1)


def sign_up(client: TestClient, **fields: str) -> Any:
    form = {"email": "ada@example.com", "first_name": "Ada", "consent": "yes", **fields}
    return client.post(f"/subscribe/{SLUG}", data=form)


Factory = Callable[..., Served]
