"""Helpers for the bounce tests: a project with sent deliveries, and filled-in fixture reports."""

from __future__ import annotations

import mailbox
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from dripline.cli import main
from dripline.tokens import TokenSigner, verp_address

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bounces"
T0 = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
RETURN_PATH = "bounces@example.test"
SECRET = "bounce-test-secret-key"


def environment(project: Path, **extra: str) -> dict[str, str]:
    return {
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": SECRET,
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_RETURN_PATH": RETURN_PATH,
        **extra,
    }


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner(env=env).invoke(main, list(args))


def cli(env: dict[str, str], *args: str) -> str:
    result = invoke(env, *args)
    assert result.exit_code == 0, result.output
    return result.output


@dataclass(frozen=True)
class Sent:
    delivery_id: int
    email: str
    message_id: str
    verp: str  # the envelope sender it went out with


def subscribe_and_send_first_step(
    env: dict[str, str], people: list[str], sender: str = "memory:"
) -> dict[str, Sent]:
    """Subscribe ``people`` to two campaigns and send step 1 of the first one."""
    for person in people:
        for campaign in ("ketamine-therapy", "second"):
            cli(env, "subscribe", person, "--campaign", campaign, "--at", T0.isoformat())
    cli(env, "run", "--once", "--now", (T0 + timedelta(minutes=1)).isoformat(), "--sender", sender)
    db = db_rows(Path(env["DRIPLINE_ROOT"]))
    signer = TokenSigner(env["DRIPLINE_SECRET_KEY"])

    def verp(delivery_id: int) -> str:
        return verp_address(env["DRIPLINE_RETURN_PATH"], signer.return_path_token(delivery_id))

    return {
        r["email"]: Sent(r["id"], r["email"], r["message_id"], verp(r["id"]))
        for r in db
        if r["status"] == "sent" and r["campaign"] == "ketamine-therapy"
    }


def db_rows(project: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(project / "dripline.db")
    db.row_factory = sqlite3.Row
    rows = db.execute(
        "SELECT d.*, s.email, s.status AS subscriber_status, e.campaign, "
        "e.status AS enrollment_status FROM deliveries d "
        "JOIN enrollments e ON e.id = d.enrollment_id JOIN subscribers s ON s.id = e.subscriber_id"
    ).fetchall()
    db.close()
    return rows


def state_of(project: Path, email: str) -> tuple[str, dict[tuple[str, int], str]]:
    rows = [r for r in db_rows(project) if r["email"] == email]
    return rows[0]["subscriber_status"], {(r["campaign"], r["step"]): r["status"] for r in rows}


def report(name: str, *, verp: str, rcpt: str, message_id: str) -> bytes:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    text = text.replace("@@VERP@@", verp).replace("@@RCPT@@", rcpt).replace("@@MSGID@@", message_id)
    return text.replace("\n", "\r\n").encode("utf-8")


def maildir_with(path: Path, messages: dict[str, bytes]) -> dict[str, str]:
    """A Maildir holding ``messages`` in new/; returns name -> file name."""
    box = mailbox.Maildir(path, create=True)
    return {name: box.add(data) for name, data in messages.items()}


def maildir_files(path: Path) -> dict[str, set[str]]:
    return {
        sub: {p.name for p in (path / sub).iterdir()} if (path / sub).is_dir() else set()
        for sub in ("new", "cur")
    }
