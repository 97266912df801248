"""console: prints each message's headers and its text part to stdout."""

from __future__ import annotations

import uuid
from email import policy
from email.message import EmailMessage

import pytest

from sender import OutgoingMessage, create_sender


def message(html: bool) -> OutgoingMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "Dripline <news@example.test>"
    msg["To"] = "reader@example.test"
    msg["Subject"] = "Day 2: the science"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content("Hello reader,\nhere is day two.\n")
    if html:
        msg.add_alternative("<p>Hello reader, here is <b>day two</b>.</p>\n", subtype="html")
    return OutgoingMessage("news@example.test", ("reader@example.test",), msg.as_bytes(), "<x>")


def test_prints_headers_and_text_part(capsys: pytest.CaptureFixture[str]) -> None:
    with create_sender("console:") as sender:
        first = sender.send(message(html=True))
        second = sender.send(message(html=False))
    out = capsys.readouterr().out
    assert "Envelope: news@example.test -> reader@example.test" in out
    assert "Subject: Day 2: the science" in out
    assert "From: Dripline <news@example.test>" in out
    assert out.count("Hello reader,\nhere is day two.") == 2
    assert "<b>day two</b>" not in out  # HTML source is summarised, not dumped
    assert out.count("[text/html part:") == 1
    assert (first.queue_id, second.queue_id) == ("1", "2")
    assert first.code == 250


def test_a_message_without_text_part_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    raw = (
        b"From: a@example.test\r\nTo: b@example.test\r\nSubject: html only\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n"
    )
    create_sender("console:").send(
        OutgoingMessage("a@example.test", ("b@example.test",), raw, "<y>")
    )
    out = capsys.readouterr().out
    assert "Subject: html only" in out and "(no text/plain part)" in out
