"""``dripline bounces process --maildir``: each fixture report acts on exactly its delivery."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from bounce_support import (
    T0,
    cli,
    environment,
    invoke,
    maildir_files,
    maildir_with,
    report,
    state_of,
    subscribe_and_send_first_step,
)


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    shutil.copytree(project / "campaigns/ketamine-therapy", project / "campaigns/second")
    return environment(project)


PEOPLE = ["ada@example.org", "bob@example.org", "cy@example.org", "di@example.org"]


@pytest.mark.parametrize(
    "fixture, expected_kind, expected_code",
    [
        ("postfix-user-unknown.eml", "hard", "5.1.1"),
        ("exim-no-such-user.eml", "hard", None),
        ("exchange-ndr.eml", "hard", None),
        ("gmail-account-disabled.eml", "hard", "5.1.1"),
    ],
)
def test_a_hard_bounce_marks_exactly_that_subscriber_bounced(
    project, env, tmp_path, fixture, expected_kind, expected_code
):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    box = tmp_path / "bounces"
    names = maildir_with(
        box, {"r": report(fixture, verp=ada.verp, rcpt=ada.email, message_id=ada.message_id)}
    )
    out = cli(env, "bounces", "process", "--maildir", str(box))
    assert "1 processed" in out, out

    status, deliveries = state_of(project, ada.email)
    assert status == "bounced"
    assert deliveries[("ketamine-therapy", 1)] == "sent"
    assert {s for k, s in deliveries.items() if k[1] != 1} == {"cancelled"}
    for other in PEOPLE[1:]:
        status, deliveries = state_of(project, other)
        assert status == "active" and "cancelled" not in deliveries.values()

    (event,) = json.loads(cli(env, "bounces", "list", "--json"))
    assert (event["kind"], event["status_code"], event["email"]) == (
        expected_kind,
        expected_code,
        ada.email,
    )
    assert event["delivery_id"] == ada.delivery_id and event["matched_by"] == "token"
    files = maildir_files(box)
    assert files["new"] == set() and files["cur"] == {f"{names['r']}:2,S"}
    shown = cli(env, "bounces", "show", str(event["id"]))
    assert ada.email in shown and "Day one: what it is" in shown  # the raw report is kept
    assert "suppressed since" in cli(env, "suppress", "list") or ada.email in cli(
        env, "suppress", "list"
    )


def test_matching_falls_back_to_message_id_then_address(project, env, tmp_path):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada, bob, cy = sent["ada@example.org"], sent["bob@example.org"], sent["cy@example.org"]
    foreign = "bounces+notatokenatall@example.test"
    box = tmp_path / "bounces"
    maildir_with(
        box,
        {
            # A forged token and the real Message-ID: the Message-ID decides.
            "by-id": report(
                "postfix-user-unknown.eml", verp=foreign, rcpt=bob.email, message_id=ada.message_id
            ),
            # No token (the bare return path), no Message-ID we know: the address decides.
            "by-address": report(
                "exim-no-such-user.eml",
                verp=env["DRIPLINE_RETURN_PATH"],
                rcpt=cy.email,
                message_id="<x@elsewhere>",
            ),
            # Nothing of ours: left alone.
            "stranger": report(
                "gmail-account-disabled.eml",
                verp="someone@example.test",
                rcpt="nobody@example.net",
                message_id="<y@elsewhere>",
            ),
        },
    )
    cli(env, "bounces", "process", "--maildir", str(box))
    events = {e["email"]: e for e in json.loads(cli(env, "bounces", "list", "--json"))}
    assert events[ada.email]["matched_by"] == "message-id"
    assert events[cy.email]["matched_by"] == "address"
    assert set(events) == {ada.email, cy.email}
    assert state_of(project, bob.email)[0] == "active"
    assert len(maildir_files(box)["new"]) == 1  # the stranger's report is where it was


def test_vacation_and_human_replies_are_left_exactly_where_they_are(project, env, tmp_path):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    box = tmp_path / "bounces"
    messages = {
        name: report(f"{name}.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id)
        for name in ("vacation", "human-reply")
    }
    names = maildir_with(box, messages)
    before = {p: p.read_bytes() for p in (box / "new").iterdir()}
    out = cli(env, "bounces", "process", "--maildir", str(box))
    assert "0 processed" in out and "2 not bounces" in out
    assert {p: p.read_bytes() for p in (box / "new").iterdir()} == before
    assert maildir_files(box) == {"new": set(names.values()), "cur": set()}
    assert state_of(project, ada.email)[0] == "active"
    assert json.loads(cli(env, "bounces", "list", "--json")) == []


def test_soft_bounces_count_and_the_third_within_the_window_suppresses(project, env, tmp_path):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    for round_ in range(3):
        box = tmp_path / f"round{round_}"
        data = report(
            "mailbox-full-4.2.2.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
        )
        maildir_with(box, {"r": data + f"\r\nround {round_}\r\n".encode()})
        cli(env, "bounces", "process", "--maildir", str(box))
        status, deliveries = state_of(project, ada.email)
        pending = [s for k, s in deliveries.items() if k[1] != 1]
        if round_ < 2:
            assert set(pending) == {"scheduled"}, round_
        else:
            assert set(pending) == {"cancelled"}
    events = json.loads(cli(env, "bounces", "list", "--json"))
    assert [e["action"] for e in events] == ["counted", "counted", "suppressed"]
    assert ada.email in cli(env, "suppress", "list")
    assert status == "active"  # a full mailbox is not a dead one: only suppressed


def test_the_soft_bounce_limit_is_configurable(project, env, tmp_path):
    env = {**env, "DRIPLINE_SOFT_BOUNCE_LIMIT": "1"}
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    box = tmp_path / "box"
    maildir_with(
        box,
        {
            "r": report(
                "mailbox-full-4.2.2.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
            )
        },
    )
    cli(env, "bounces", "process", "--maildir", str(box))
    assert json.loads(cli(env, "bounces", "list", "--json"))[0]["action"] == "suppressed"


def test_a_complaint_unsubscribes_from_every_campaign_and_suppresses(project, env, tmp_path):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    bob = sent["bob@example.org"]
    box = tmp_path / "box"
    maildir_with(
        box,
        {
            "arf": report(
                "arf-complaint.eml", verp=bob.verp, rcpt=bob.email, message_id=bob.message_id
            )
        },
    )
    cli(env, "bounces", "process", "--maildir", str(box), "--move-to", "Processed")
    status, deliveries = state_of(project, bob.email)
    assert status == "unsubscribed"
    assert {s for k, s in deliveries.items() if k[1] != 1} == {"cancelled"}
    assert "complaint" in cli(env, "suppress", "list")
    assert maildir_files(box) == {"new": set(), "cur": set()}
    assert len(list((box / ".Processed" / "cur").iterdir())) == 1

    # Re-subscribing by hand is refused with the reason, until removed from the list.
    result = invoke(env, "subscribe", bob.email, "--campaign", "ketamine-therapy")
    assert result.exit_code == 1 and "suppressed since" in result.output
    assert "complaint" in result.output


def test_processing_again_and_dry_run_change_nothing(project, env, tmp_path):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    data = report(
        "postfix-user-unknown.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
    )
    box = tmp_path / "box"
    maildir_with(box, {"r": data})
    out = cli(env, "bounces", "process", "--maildir", str(box), "--dry-run")
    assert "dry run" in out and "bounced" in out
    assert state_of(project, ada.email)[0] == "active"
    assert len(maildir_files(box)["new"]) == 1
    assert json.loads(cli(env, "bounces", "list", "--json")) == []

    cli(env, "bounces", "process", "--maildir", str(box))
    maildir_with(box, {"copy": data})  # the same report delivered twice
    out = cli(env, "bounces", "process", "--maildir", str(box))
    assert "duplicate" in out
    assert len(json.loads(cli(env, "bounces", "list", "--json"))) == 1
    assert maildir_files(box)["new"] == set()


def test_undo_reverses_one_event(project, env, tmp_path):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    bob = sent["bob@example.org"]
    _, before = state_of(project, bob.email)
    box = tmp_path / "box"
    maildir_with(
        box,
        {
            "arf": report(
                "arf-complaint.eml", verp=bob.verp, rcpt=bob.email, message_id=bob.message_id
            )
        },
    )
    cli(env, "bounces", "process", "--maildir", str(box))
    (event,) = json.loads(cli(env, "bounces", "list", "--json"))
    out = cli(env, "bounces", "undo", str(event["id"]))
    assert "1 suppression(s) removed" in out
    assert state_of(project, bob.email) == ("active", before)
    assert bob.email not in cli(env, "suppress", "list")
    again = invoke(env, "bounces", "undo", str(event["id"]))
    assert again.exit_code == 1 and "undone already" in again.output
    missing = invoke(env, "bounces", "undo", "999")
    assert missing.exit_code == 1 and "Error: no bounce event 999" in missing.output
    # The restored deliveries go out again on the next pass.
    cli(env, "run", "--once", "--now", (T0 + timedelta(days=30)).isoformat(), "--sender", "memory:")
    assert state_of(project, bob.email)[1][("ketamine-therapy", 2)] == "sent"


def test_list_since_and_bad_input(project, env, tmp_path):
    # A read-only command: it refuses a missing database rather than create an empty one.
    missing = invoke(env, "bounces", "list")
    assert missing.exit_code == 1 and missing.output.startswith("Error: no database at")
    assert not (project / "dripline.db").exists()
    cli(env, "db", "upgrade")
    assert json.loads(cli(env, "bounces", "list", "--json", "--since", "2000-01-01")) == []
    bad = invoke(env, "bounces", "list", "--since", "yesterday")
    assert bad.exit_code == 1 and "Error: not an ISO 8601" in bad.output
    both = invoke(env, "bounces", "process")
    assert both.exit_code == 1 and "exactly one of --maildir" in both.output
    missing = invoke(env, "bounces", "process", "--maildir", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "not a Maildir" in missing.output


def test_status_counts_bounces_and_complaints_per_step_and_warns_over_the_rates(
    project, env, tmp_path
):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    now = ("--now", (T0 + timedelta(days=2)).isoformat())
    out = cli(env, "status", "ketamine-therapy", *now)
    assert "4 sent, 0 hard bounce(s) (0.00%), 0 complaint(s) (0.00%)" in out
    assert "Warning" not in out
    ada, bob = sent["ada@example.org"], sent["bob@example.org"]
    box = tmp_path / "box"
    maildir_with(
        box,
        {
            "dsn": report(
                "postfix-user-unknown.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
            ),
            "arf": report(
                "arf-complaint.eml", verp=bob.verp, rcpt=bob.email, message_id=bob.message_id
            ),
        },
    )
    cli(env, "bounces", "process", "--maildir", str(box))
    status = json.loads(cli(env, "status", "ketamine-therapy", "--json", *now))
    first = status["steps"][0]
    assert (first["step"], first["bounces"], first["complaints"]) == (1, 1, 1)
    assert all(s["bounces"] == s["complaints"] == 0 for s in status["steps"][1:])
    window = status["last_30_days"]
    assert (window["sent"], window["hard_bounces"], window["complaints"]) == (4, 1, 1)
    assert window["bounce_rate"] == 0.25 and window["complaint_rate"] == 0.25
    assert len(window["warnings"]) == 2
    table = cli(env, "status", "ketamine-therapy", *now)
    assert "Warning: complaint rate 25.00% over the last 30 days is above 0.3%" in table
    assert "Warning: bounce rate 25.00% over the last 30 days is above 2%" in table
    # The second campaign had no bounce of its own.
    other = json.loads(cli(env, "status", "second", "--json", *now))["last_30_days"]
    assert (other["hard_bounces"], other["complaints"], other["warnings"]) == (0, 0, [])
    # Outside the window nothing counts towards the rates; the per-step counts stay.
    later = json.loads(cli(env, "status", "--json", "--now", "2026-06-01"))
    assert later["last_30_days"]["sent"] == 0 and later["last_30_days"]["warnings"] == []
    assert later["steps"][0]["bounces"] == 1


def test_hostile_mail_is_left_alone_and_the_rest_processed(project, env, tmp_path):
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    junk = {
        "binary": bytes(range(256)) * 50,
        "empty": b"",
        "broken-mime": b"Content-Type: multipart/report; report-type=delivery-status; "
        b'boundary="x"\r\nFrom: MAILER-DAEMON@x\r\n\r\n--x\r\nContent-Type: '
        b"message/delivery-status\r\n\r\nAction: failed\r\nStatus: 5.\xff\r\n"
        b"Final-Recipient: rfc822; <<<>>>\r\n",
        "long-header": b"Subject: " + b"A" * 200_000 + b"\r\n\r\nbody\r\n",
        "no-address-dsn": report(
            "postfix-user-unknown.eml", verp="x@y", rcpt="", message_id="<nope@x>"
        ),
    }
    good = report(
        "postfix-user-unknown.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
    )
    box = tmp_path / "box"
    names = maildir_with(box, {**junk, "good": good})
    out = cli(env, "bounces", "process", "--maildir", str(box))
    assert "1 processed" in out, out
    assert state_of(project, ada.email)[0] == "bounced"
    left = maildir_files(box)["new"]
    assert left == {names[k] for k in junk}
    for name in junk:
        assert (box / "new" / names[name]).read_bytes().replace(b"\r\n", b"\n") == junk[
            name
        ].replace(b"\r\n", b"\n")


def test_a_process_killed_midway_loses_nothing_and_records_nothing_twice(project, env, tmp_path):
    """SIGKILL during a run: every report is recorded once, and the rerun finishes the moves."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    people = [f"p{i}@example.org" for i in range(30)]
    sent = subscribe_and_send_first_step(env, people)
    box = tmp_path / "box"
    maildir_with(
        box,
        {
            p: report(
                "postfix-user-unknown.eml",
                verp=sent[p].verp,
                rcpt=p,
                message_id=sent[p].message_id,
            )
            for p in people
        },
    )
    command = [sys.executable, "-m", "dripline.cli", "bounces", "process", "--maildir", str(box)]
    child = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    db = project / "dripline.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with sqlite3.connect(db) as conn:
                done = conn.execute("SELECT count(*) FROM bounce_events").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not there yet
            done = 0
        if done >= 3:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()

    cli(env, "bounces", "process", "--maildir", str(box))
    events = json.loads(cli(env, "bounces", "list", "--json"))
    assert sorted(e["email"] for e in events) == sorted(people)  # each exactly once
    assert maildir_files(box)["new"] == set()
    assert len(maildir_files(box)["cur"]) == len(people)
    assert all(state_of(project, p)[0] == "bounced" for p in people)


def _fingerprint(path: Path) -> tuple[bytes, float, int]:
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime, stat.st_mode


def test_foreign_tokens_and_forwarded_reports_are_left_byte_for_byte(project, env, tmp_path):
    """A DSN whose VERP token our key did not sign (forged, or another installation sharing
    the bounce mailbox) must not fall back to the address; nor may a DSN forwarded inside a
    digest count. Both stay in new/ untouched, and their subscribers stay active."""
    import email
    from email.message import EmailMessage

    from dripline.tokens import TokenSigner, verp_address

    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada, bob, cy, di = (sent[p] for p in PEOPLE)
    local, _, domain = bob.verp.partition("@")
    flipped = local[:-1] + ("a" if local[-1] != "a" else "b")
    other_key = TokenSigner("another-installation-secret")
    other_verp = verp_address(
        env["DRIPLINE_RETURN_PATH"], other_key.return_path_token(cy.delivery_id)
    )
    forwarded = report(
        "postfix-user-unknown.eml", verp=di.verp, rcpt=di.email, message_id=di.message_id
    )
    digest = EmailMessage()
    digest["From"] = "postmaster@lists.example.org"
    digest["To"] = env["DRIPLINE_RETURN_PATH"]
    digest["Subject"] = "mail-admins digest: look at this bounce"
    digest.set_content("Forwarded for your records.\n")
    digest.add_attachment(email.message_from_bytes(forwarded))
    foreign = {
        "tampered": report(
            "postfix-user-unknown.eml",
            verp=f"{flipped}@{domain}",
            rcpt=bob.email,
            message_id="<t@forger.example>",
        ),
        "other-installation": report(
            "postfix-user-unknown.eml", verp=other_verp, rcpt=cy.email, message_id="<o@x.example>"
        ),
        "digest": digest.as_bytes(),
    }
    good = report(
        "postfix-user-unknown.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
    )
    box = tmp_path / "box"
    names = maildir_with(box, {**foreign, "good": good})
    before = {k: _fingerprint(box / "new" / names[k]) for k in foreign}

    out = cli(env, "bounces", "process", "--maildir", str(box))
    assert "1 processed" in out and "2 unmatched" in out, out
    assert state_of(project, ada.email)[0] == "bounced"
    for person in (bob, cy, di):
        status, deliveries = state_of(project, person.email)
        assert status == "active" and "cancelled" not in deliveries.values(), person.email
    assert [e["email"] for e in json.loads(cli(env, "bounces", "list", "--json"))] == [ada.email]
    assert cli(env, "suppress", "export").count("@") == 1
    assert maildir_files(box)["new"] == {names[k] for k in foreign}
    assert {k: _fingerprint(box / "new" / names[k]) for k in foreign} == before


def test_a_localized_ndr_with_8bit_headers_is_processed_without_a_traceback(project, env, tmp_path):
    """Raw UTF-8 in a mailer's From: made flufl.bounce's Sina detector raise (a traceback on
    the terminal) and the bounce was never acted on."""
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    ndr = report("exchange-ndr.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id)
    ndr = ndr.replace(
        b"From: System Administrator <postmaster@corp.example.com>",
        "From: Système de messagerie <postmaster@corp.example.com>".encode(),
    ).replace(b"Subject: Undeliverable:", "Subject: Non remis : Grüße".encode())
    box = tmp_path / "box"
    maildir_with(box, {"ndr": ndr})
    result = invoke(env, "bounces", "process", "--maildir", str(box))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "1 processed" in result.output, result.output
    assert state_of(project, ada.email)[0] == "bounced"
    (event,) = json.loads(cli(env, "bounces", "list", "--json"))
    assert event["matched_by"] == "token" and event["delivery_id"] == ada.delivery_id


def test_run_refuses_a_return_path_whose_verp_address_is_over_254_octets(project, env):
    cli(
        env,
        "subscribe",
        "ada@example.org",
        "--campaign",
        "ketamine-therapy",
        "--at",
        T0.isoformat(),
    )
    domain = ".".join(["a" * 63] * 3 + ["c" * 40]) + ".example.net"
    long_env = {**env, "DRIPLINE_RETURN_PATH": f"bounces@{domain}"}
    result = invoke(
        long_env,
        "run",
        "--once",
        "--now",
        (T0 + timedelta(minutes=1)).isoformat(),
        "--sender",
        "memory:",
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: DRIPLINE_RETURN_PATH:") and "254" in result.output
    assert "Traceback" not in result.output
    assert set(state_of(project, "ada@example.org")[1].values()) == {"scheduled"}


def test_status_rates_are_over_the_messages_sent_in_the_window(project, env, tmp_path):
    """A report is set against the message it is about: bounces of earlier mail must not
    show as "0 sent, 1 hard bounce(s) (0.00%)", nor push a later window's rate over 100%."""
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada, bob = sent["ada@example.org"], sent["bob@example.org"]
    box = tmp_path / "box"
    maildir_with(
        box,
        {
            "dsn": report(
                "postfix-user-unknown.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
            ),
            "dsn-again": report(  # the same message reported twice counts once
                "gmail-account-disabled.eml",
                verp=ada.verp,
                rcpt=ada.email,
                message_id=ada.message_id,
            ),
            "arf": report(
                "arf-complaint.eml", verp=bob.verp, rcpt=bob.email, message_id=bob.message_id
            ),
        },
    )
    cli(env, "bounces", "process", "--maildir", str(box))
    first = json.loads(cli(env, "status", "ketamine-therapy", "--json", "--now", "2026-03-07"))
    window = first["last_30_days"]
    assert (window["sent"], window["hard_bounces"], window["complaints"]) == (4, 1, 1)
    assert window["bounce_rate"] == 0.25 and len(window["warnings"]) == 2
    # 35 days on, the others get step 2; ada bounced and bob complained, so they do not.
    later = (T0 + timedelta(days=35)).isoformat()
    cli(env, "run", "--once", "--now", later, "--sender", "memory:")
    status = json.loads(cli(env, "status", "ketamine-therapy", "--json", "--now", later))
    window = status["last_30_days"]
    assert (window["sent"], window["hard_bounces"], window["complaints"]) == (2, 0, 0)
    assert window["warnings"] == [] and window["bounce_rate"] == 0.0
    # Today, long after every send: nothing sent, so nothing bounced in the window.
    today = cli(env, "status", "ketamine-therapy")
    assert "last 30 days: 0 sent, 0 hard bounce(s) (0.00%), 0 complaint(s) (0.00%)" in today
    assert status["steps"][0]["bounces"] == 2 and status["steps"][0]["complaints"] == 1


def test_a_message_renamed_by_another_client_between_read_and_move_is_still_moved(
    project, env, tmp_path
):
    """Dovecot serving the same Maildir moves new/ mail to cur/ (and sets flags) whenever a
    client looks: the file read is then gone from where it was read. The report is still
    recorded once and moved, and the run goes on to the next message."""
    from datetime import UTC, datetime

    from dripline.bounces import MaildirMailbox, process_mailbox
    from dripline.store import BouncePolicy, open_store
    from dripline.tokens import TokenSigner

    sent = subscribe_and_send_first_step(env, PEOPLE)
    box = tmp_path / "box"
    names = maildir_with(
        box,
        {
            p: report(
                "postfix-user-unknown.eml",
                verp=sent[p].verp,
                rcpt=p,
                message_id=sent[p].message_id,
            )
            for p in PEOPLE
        },
    )

    class SharedWithDovecot(MaildirMailbox):
        def messages(self):  # type: ignore[override]
            for key, data in super().messages():
                sub, _, name = key.partition("/")
                if name == names[PEOPLE[1]]:
                    (self.path / sub / name).unlink()  # deleted by a client meanwhile
                else:
                    os.rename(self.path / sub / name, self.path / "cur" / f"{name}:2,RS")
                yield key, data

    engine = open_store(f"sqlite:///{project / 'dripline.db'}")
    try:
        result = process_mailbox(
            engine,
            SharedWithDovecot(box),
            now=datetime.now(UTC),
            signer=TokenSigner(env["DRIPLINE_SECRET_KEY"]),
            return_path=env["DRIPLINE_RETURN_PATH"],
            policy=BouncePolicy(),
        )
    finally:
        engine.dispose()
    assert [o.verdict for o in result.outcomes] == ["bounced"] * 4
    assert maildir_files(box) == {
        "new": set(),
        "cur": {f"{names[p]}:2,RS" for p in PEOPLE if p != PEOPLE[1]},
    }
    assert all(state_of(project, p)[0] == "bounced" for p in PEOPLE)
    again = cli(env, "bounces", "process", "--maildir", str(box))
    assert "0 processed" in again and len(json.loads(cli(env, "bounces", "list", "--json"))) == 4


def test_show_and_process_print_a_hostile_reports_control_characters_escaped(
    project, env, tmp_path
):
    """A report's text is whoever sent it: escape sequences in it must reach the reviewer's
    terminal as visible text, not be obeyed (clearing the screen, retitling the window)."""
    sent = subscribe_and_send_first_step(env, PEOPLE)
    ada = sent["ada@example.org"]
    hostile = report(
        "postfix-user-unknown.eml", verp=ada.verp, rcpt=ada.email, message_id=ada.message_id
    ).replace(b"This is the mail system", b"\x1b]0;owned\x07\x1b[2JThis is the mail system")
    stranger = report(
        "postfix-user-unknown.eml",
        verp="someone@example.test",
        rcpt="x\x1b[2J@example.net",
        message_id="<s@x>",
    )
    box = tmp_path / "box"
    maildir_with(box, {"hostile": hostile, "stranger": stranger})
    out = cli(env, "bounces", "process", "--maildir", str(box))
    (event,) = json.loads(cli(env, "bounces", "list", "--json"))
    shown = cli(env, "bounces", "show", str(event["id"]))
    for text in (out, shown):
        assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]0;owned\\x07\\x1b[2JThis is the mail system" in shown
    assert "Reporting-MTA: dns; mx.example.com" in shown  # the rest of the report as it was
