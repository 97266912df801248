"""maildir:PATH writes messages a mail client can open: read them back with mailbox."""

from __future__ import annotations

import mailbox
import uuid
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from sender import OutgoingMessage, PermanentSendError, SenderConfigError, create_sender


def multipart(to: str) -> OutgoingMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "news@example.test"
    msg["To"] = to
    msg["Subject"] = "Week one: what to expect"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.test>"
    msg.set_content("Plain words for plain readers.\n")
    msg.add_alternative("<p>Plain words for <b>HTML</b> readers.</p>\n", subtype="html")
    return OutgoingMessage("news@example.test", (to,), msg.as_bytes(), msg["Message-ID"])


def test_messages_land_in_new_and_read_back_whole(tmp_path: Path) -> None:
    sent = [multipart(f"reader{i}@example.test") for i in range(3)]
    with create_sender(f"maildir:{tmp_path / 'outbox'}") as sender:
        results = [sender.send(m) for m in sent]
    box = mailbox.Maildir(tmp_path / "outbox", create=False)
    assert sorted(box.keys()) == sorted(r.queue_id for r in results)
    assert all((tmp_path / "outbox" / "new" / r.queue_id).is_file() for r in results)
    by_id = {m["Message-ID"]: m for m in box}
    for message in sent:
        read = by_id[message.message_id]
        assert read["To"] == message.recipients[0]
        parts = [p.get_content_type() for p in read.walk()]
        assert parts == ["multipart/alternative", "text/plain", "text/html"]


def test_an_unwritable_folder_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(SenderConfigError, match="maildir:"):
        create_sender(f"maildir:{blocker / 'box'}").open()


def test_maildir_needs_a_folder() -> None:
    with pytest.raises(SenderConfigError, match="needs a folder"):
        create_sender("maildir:")


def test_a_message_without_recipients_is_refused(tmp_path: Path) -> None:
    empty = OutgoingMessage("news@example.test", (), b"Subject: x\r\n\r\nx\r\n", "<x@y>")
    with pytest.raises(PermanentSendError, match="no recipient"):
        create_sender(f"maildir:{tmp_path}").send(empty)


def test_send_many_returns_one_outcome_per_message(tmp_path: Path) -> None:
    good = multipart("a@example.test")
    bad = OutgoingMessage("news@example.test", (), b"Subject: x\r\n\r\nx\r\n", "<bad@y>")
    with create_sender(f"maildir:{tmp_path}") as sender:
        results = sender.send_many([good, bad, good])
    assert [type(r).__name__ for r in results] == [
        "SendResult",
        "PermanentSendError",
        "SendResult",
    ]
    assert len(mailbox.Maildir(tmp_path, create=False)) == 2


def test_an_existing_empty_folder_becomes_a_maildir(tmp_path: Path) -> None:
    (tmp_path / "box").mkdir()
    with create_sender(f"maildir:{tmp_path / 'box'}") as sender:
        result = sender.send(multipart("a@example.test"))
    assert (tmp_path / "box" / "new" / result.queue_id).is_file()
