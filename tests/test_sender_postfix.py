"""The SMTP sender against Debian's Postfix on 127.0.0.1, read back from its Maildir.

Runs when SMTP_HOST, SMTP_PORT and MAILDIR are set (``eval "$(bash .ci/postfix.sh start)"``);
skipped otherwise.
"""

from __future__ import annotations

import mailbox
import os
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from mail_checks import assert_wire_clean, display_name_of, raw_headers, rfc2047

from dripline.campaign import load_campaign
from dripline.render import CampaignRenderer, Recipient
from sender import OutgoingMessage, PermanentSendError, SendResult, create_sender

HOST, PORT, MAILDIR = (os.environ.get(name) for name in ("SMTP_HOST", "SMTP_PORT", "MAILDIR"))
pytestmark = pytest.mark.skipif(
    not (HOST and PORT and MAILDIR), reason="no Postfix: run .ci/postfix.sh start"
)

REPO = Path(__file__).resolve().parent.parent
TEXT = "Hi Ada,\n\nDay one: what ketamine-assisted therapy is.\n.A dotted line stays.\n"
HTML = "<html><body><p>Hi Ada,</p><p>Day one: <b>what it is</b>.</p></body></html>\n"


def multipart(token: str, to: str) -> OutgoingMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "Dripline <news@example.test>"
    msg["To"] = to
    msg["Subject"] = f"Day one {token}"
    msg["Message-ID"] = f"<{token}@example.test>"
    msg["List-Unsubscribe"] = "<https://example.test/u/abc>"
    msg.set_content(TEXT)
    msg.add_alternative(HTML, subtype="html")
    return OutgoingMessage("news@example.test", (to,), msg.as_bytes(), msg["Message-ID"])


def wait_for(token: str, seconds: float = 20.0) -> list[mailbox.MaildirMessage]:
    box = mailbox.Maildir(MAILDIR, factory=None, create=False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [m for m in box if token in (m["Subject"] or "")]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_a_multipart_message_arrives_whole_in_the_maildir() -> None:
    token = uuid.uuid4().hex
    to = f"ada-{token[:8]}@example.test"
    sent = multipart(token, to)
    with create_sender(f"smtp://{HOST}:{PORT}?timeout=10") as sender:
        result = sender.send(sent)
    assert isinstance(result, SendResult) and result.code == 250
    assert result.enhanced_status == "2.0.0" and result.queue_id

    found = wait_for(token)
    assert len(found) == 1, "delivered exactly once"
    got = found[0]
    assert got["X-Original-To"] == to and got["Return-Path"] == "<news@example.test>"
    assert got["Message-ID"] == sent.message_id
    assert got["List-Unsubscribe"] == "<https://example.test/u/abc>"
    assert result.queue_id in got["Received"]  # Postfix's own queue id, as it replied
    message = message_from_bytes(got.as_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and text.get_content().replace("\r\n", "\n") == TEXT
    assert html is not None and html.get_content().replace("\r\n", "\n") == HTML


def test_pipelined_batch_over_several_connections() -> None:
    token = uuid.uuid4().hex
    messages = [multipart(f"{token}-{i}", f"batch{i}-{token[:8]}@example.test") for i in range(12)]
    with create_sender(f"smtp://{HOST}:{PORT}?connections=3") as sender:
        results = sender.send_many(messages)
    assert all(isinstance(r, SendResult) for r in results)
    assert len({r.queue_id for r in results}) == 12
    arrived = wait_for(token)
    deadline = time.monotonic() + 20
    while len(arrived) < 12 and time.monotonic() < deadline:
        time.sleep(0.2)
        arrived = wait_for(token)
    assert sorted(m["Message-ID"] for m in arrived) == sorted(m.message_id for m in messages)


def test_relaying_elsewhere_is_refused_permanently_but_is_no_bounce() -> None:
    token = uuid.uuid4().hex
    with create_sender(f"smtp://{HOST}:{PORT}") as sender:
        with pytest.raises(PermanentSendError) as refused:
            sender.send(multipart(token, "someone@elsewhere.invalid"))
        after = sender.send(multipart(token + "-ok", f"ok-{token[:8]}@example.test"))
    assert refused.value.code == 554 and refused.value.enhanced_status == "5.7.1"
    assert not refused.value.bounce  # our relay's policy, not a dead mailbox
    assert after.code == 250


@pytest.mark.parametrize("path", ["full", "fast"])
def test_a_rendered_campaign_email_reads_back_byte_for_byte(path: str) -> None:
    """Issue 12: what dripline writes (both render paths) survives Postfix unchanged."""
    token = uuid.uuid4().hex
    to = f"zoe-{token[:8]}@example.test"
    renderer = CampaignRenderer(
        load_campaign(REPO / "campaigns" / "ketamine-therapy"), REPO / "templates"
    )
    compiled = renderer.step(2)
    name = f"Zoë {token} 😀 שלום Gutiérrez-Núñez de los Ángeles y Bustamante"
    person = Recipient(to, {"name": name, "first_name": "Zoë"}, f"https://e.test/u/{token}")
    if path == "full":
        message_id = f"<full-{token}@example.com>"
        data = compiled.render(person, message_id=message_id).data
    else:
        message_id, data = compiled.render_bytes(person, message_id=f"<fast-{token}@example.com>")
        assert compiled.slotted is not None
    with create_sender(f"smtp://{HOST}:{PORT}?timeout=10") as sender:
        sender.send(OutgoingMessage("hello@example.com", (to,), data, message_id))

    box = mailbox.Maildir(MAILDIR, factory=None, create=False)
    deadline = time.monotonic() + 20
    found: list[bytes] = []
    while not found and time.monotonic() < deadline:
        found = [m.as_bytes() for m in box if m["Message-ID"] == message_id]
        time.sleep(0.1)
    assert len(found) == 1, "delivered exactly once"
    # Postfix only prepends its trace headers; the message itself is the bytes sent.
    assert found[0].replace(b"\r\n", b"\n").endswith(data.replace(b"\r\n", b"\n"))
    assert_wire_clean(found[0])
    got = message_from_bytes(found[0], policy=policy.default)
    assert rfc2047(raw_headers(found[0])["subject"]) == compiled.render(person).subject
    assert display_name_of(raw_headers(found[0])["to"]) == (name, to)
    assert got.get_body(("plain",)).get_param("format") == "flowed"
