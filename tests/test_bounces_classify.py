"""Classifying single messages: the fixture reports, delay warnings, success notices."""

from __future__ import annotations

import pytest
from bounce_support import report

from dripline.bounces import classify

VERP = "bounces+abcdefghijklmnopqrstuvwxyz23456@example.test"
RCPT = "ada@example.org"
MSGID = "<m1@example.com>"


def fixture(name: str) -> bytes:
    return report(name, verp=VERP, rcpt=RCPT, message_id=MSGID)


@pytest.mark.parametrize(
    "name, kind, code, message_id",
    [
        ("postfix-user-unknown.eml", "hard", "5.1.1", MSGID),
        ("gmail-account-disabled.eml", "hard", "5.1.1", MSGID),
        ("exim-no-such-user.eml", "hard", None, None),
        ("exchange-ndr.eml", "hard", None, None),
        ("mailbox-full-4.2.2.eml", "soft", "4.2.2", MSGID),
        ("arf-complaint.eml", "complaint", None, MSGID),
    ],
)
def test_reports_from_each_mta(name, kind, code, message_id):
    found = classify(fixture(name))
    assert found is not None
    assert (found.kind, found.email, found.status_code, found.message_id) == (
        kind,
        RCPT,
        code,
        message_id,
    )
    assert VERP in found.return_paths


@pytest.mark.parametrize("name", ["vacation.eml", "human-reply.eml"])
def test_replies_are_not_bounces(name):
    assert classify(fixture(name)) is None


@pytest.mark.parametrize("action", ["delayed", "delivered", "relayed"])
def test_delay_warnings_and_success_notices_are_not_bounces(action):
    data = fixture("mailbox-full-4.2.2.eml").replace(
        b"Action: failed", f"Action: {action}".encode()
    )
    assert classify(data) is None


def test_a_bounce_like_text_from_a_person_is_not_a_bounce():
    # flufl's loose detectors match "did not reach the following recipient" anywhere; only
    # a mailer's message counts as a non-standard bounce.
    data = fixture("exchange-ndr.eml").replace(
        b"From: System Administrator <postmaster@corp.example.com>",
        b"From: Ada <ada@example.org>",
    )
    assert classify(data) is None


def test_a_report_forwarded_inside_another_message_is_not_a_bounce():
    import email
    from email.message import EmailMessage

    for name in ("postfix-user-unknown.eml", "arf-complaint.eml"):
        wrapper = EmailMessage()
        wrapper["From"] = "MAILER-DAEMON@lists.example.org"  # even from a mailer
        wrapper["To"] = VERP
        wrapper["Subject"] = "digest"
        wrapper.set_content("one forwarded report\n")
        wrapper.add_attachment(email.message_from_bytes(fixture(name)))
        assert classify(wrapper.as_bytes()) is None, name
