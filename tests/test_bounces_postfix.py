"""A real DSN from Debian's Postfix, processed from the Maildir it lands in.

Needs ``.ci/postfix.sh start`` (SMTP_HOST, SMTP_PORT, MAILDIR): mail to bounces+TOKEN@
goes to the bounce Maildir next to MAILDIR, and no-such-user*@ is accepted at RCPT and
bounced afterwards, so Postfix itself writes the DSN to our VERP address.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import smtplib
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from bounce_support import (
    T0,
    cli,
    db_rows,
    environment,
    state_of,
    subscribe_and_send_first_step,
)

HOST, PORT, MAILDIR = (os.environ.get(name) for name in ("SMTP_HOST", "SMTP_PORT", "MAILDIR"))
BOUNCE_MAILDIR = Path(MAILDIR).parent / "bounces" / "Maildir" if MAILDIR else None
# A mailbox domain of that Postfix that email-validator accepts (it refuses .test).
DOMAIN = os.environ.get("BOUNCE_DOMAIN", "mx.example.net")
pytestmark = pytest.mark.skipif(
    not (HOST and PORT and BOUNCE_MAILDIR and (BOUNCE_MAILDIR / "new").is_dir()),
    reason="no Postfix with a bounce Maildir: run .ci/postfix.sh start",
)


def wait_for_file(folder: Path, needle: bytes, seconds: float = 30.0) -> Path:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path in folder.iterdir():
            try:
                if needle in path.read_bytes():
                    return path
            except FileNotFoundError:
                continue
        time.sleep(0.1)
    raise AssertionError(f"nothing with {needle!r} arrived in {folder} within {seconds} s")


def reply(to: str, sender: str, subject: str, body: str, **headers: str) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    with smtplib.SMTP(HOST, int(PORT or 0), timeout=10) as smtp:
        smtp.send_message(msg, from_addr=sender if "Auto_Submitted" not in headers else "")


def test_a_postfix_dsn_marks_exactly_that_subscriber_bounced(project: Path) -> None:
    shutil.copytree(project / "campaigns/ketamine-therapy", project / "campaigns/second")
    # A secret of its own: the bounce Maildir is shared with earlier runs, whose tokens
    # must not name this run's deliveries.
    env = environment(
        project,
        DRIPLINE_SECRET_KEY=secrets.token_urlsafe(24),
        DRIPLINE_RETURN_PATH=f"bounces@{DOMAIN}",
    )
    run = uuid.uuid4().hex[:10]
    dead, alive, other = (
        f"no-such-user-{run}@{DOMAIN}",
        f"ada-{run}@{DOMAIN}",
        f"bo-{run}@{DOMAIN}",
    )
    sent = subscribe_and_send_first_step(
        env, [dead, alive, other], sender=f"smtp://{HOST}:{PORT}?timeout=10"
    )
    assert set(sent) == {dead, alive, other}  # Postfix accepted all three at RCPT

    box = BOUNCE_MAILDIR
    assert box is not None
    # One DSN per message: the dead address had step 1 of both campaigns sent.
    dead_ids = [r["message_id"] for r in db_rows(project) if r["email"] == dead and r["sent_at"]]
    assert len(dead_ids) == 2
    dsns = [wait_for_file(box / "new", mid.encode()) for mid in dead_ids]
    dsn = dsns[0]
    # A vacation notice and a person's reply to the VERP address of a live subscriber.
    reply(
        sent[alive].verp,
        alive,
        f"Out of office {run}",
        "I am away until Monday and will read your message then.",
        Auto_Submitted="auto-replied",
        In_Reply_To=sent[alive].message_id,
    )
    reply(sent[alive].verp, alive, f"Re: Day one {run}", "Thanks, very helpful!")
    vacation = wait_for_file(box / "new", f"Out of office {run}".encode())
    human = wait_for_file(box / "new", f"Re: Day one {run}".encode())
    untouched = {vacation: vacation.read_bytes(), human: human.read_bytes()}

    out = cli(env, "bounces", "process", "--maildir", str(box))
    assert ", 2 processed, " in out and out.count(" bounced (event ") == 2, out

    status, deliveries = state_of(project, dead)
    assert status == "bounced"
    assert {s for (_, step), s in deliveries.items() if step > 1} == {"cancelled"}
    for person in (alive, other):
        status, deliveries = state_of(project, person)
        assert status == "active" and "cancelled" not in deliveries.values()
    assert not any(d.exists() for d in dsns)
    (moved,) = [p for p in (box / "cur").iterdir() if p.name.startswith(dsn.name + ":2,")]
    assert moved.name.endswith(":2,S") and dead_ids[0].encode() in moved.read_bytes()
    for path, data in untouched.items():
        assert path.read_bytes() == data  # still in new/, byte for byte

    events = json.loads(cli(env, "bounces", "list", "--json"))
    assert [(e["email"], e["kind"], e["status_code"], e["matched_by"]) for e in events] == [
        (dead, "hard", "5.1.1", "token")
    ] * 2
    assert {e["delivery_id"] for e in events} == {
        r["id"] for r in db_rows(project) if r["email"] == dead and r["sent_at"]
    }
    # Nothing more goes to the dead address; the live ones get their next step.
    later = (T0 + timedelta(days=30)).isoformat()
    cli(env, "run", "--once", "--now", later, "--sender", f"smtp://{HOST}:{PORT}?timeout=10")
    assert state_of(project, dead)[1][("ketamine-therapy", 2)] == "cancelled"
    assert state_of(project, alive)[1][("ketamine-therapy", 2)] == "sent"
