"""Senders are found by URL scheme through the dripline.senders entry points."""

from __future__ import annotations

from pathlib import Path

import pytest

from sender import SenderConfigError, available_schemes, create_sender, sender_class
from sender.console import ConsoleSender
from sender.maildir import MaildirSender
from sender.memory import MemorySender
from sender.smtp import SmtpSender


def test_builtins_register_through_the_entry_point_group() -> None:
    assert {"smtp", "smtps", "maildir", "memory", "console"} <= set(available_schemes())
    assert sender_class("smtp") is SmtpSender
    assert sender_class("smtps") is SmtpSender
    assert sender_class("console") is ConsoleSender


@pytest.mark.parametrize(
    ("url", "kind", "shown"),
    [
        ("smtp://relay.example.com:587", SmtpSender, "smtp://relay.example.com:587"),
        ("SMTPS://relay.example.com", SmtpSender, "smtps://relay.example.com:465"),
        ("memory:tests", MemorySender, "memory:tests"),
        ("console:", ConsoleSender, "console:"),
    ],
)
def test_create_sender_by_url(url: str, kind: type, shown: str) -> None:
    sender = create_sender(url)
    assert type(sender) is kind and sender.display_url == shown


def test_maildir_by_url(tmp_path: Path) -> None:
    sender = create_sender(f"maildir:{tmp_path / 'out'}")
    assert isinstance(sender, MaildirSender) and sender.path == tmp_path / "out"


def test_an_unknown_scheme_names_the_installed_ones() -> None:
    with pytest.raises(SenderConfigError) as err:
        create_sender("sendgrid://key@api")
    message = str(err.value)
    assert "unknown sender 'sendgrid'" in message
    for scheme in ("console:", "maildir:", "memory:", "smtp:", "smtps:"):
        assert scheme in message


def test_something_that_is_not_a_url() -> None:
    with pytest.raises(SenderConfigError, match="a sender is a URL"):
        create_sender("relay.example.com")
