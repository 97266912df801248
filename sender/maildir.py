"""``maildir:PATH``: writes each message into a Maildir that any mail client can open."""

from __future__ import annotations

import mailbox
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from .base import OutgoingMessage, Sender, SenderConfigError, SendResult, TransientSendError

__all__ = ["MaildirSender"]


class MaildirSender(Sender):
    """Delivers into ``PATH/new`` (created when missing), one file per message."""

    schemes = ("maildir",)

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._box: mailbox.Maildir | None = None

    @classmethod
    def from_url(cls, url: str, *, secrets: Mapping[str, str] | None = None) -> Self:
        _, _, raw = url.partition(":")
        if raw.startswith("//"):
            raw = raw[2:]
        if not raw:
            raise SenderConfigError("maildir: needs a folder, e.g. maildir:outbox")
        return cls(Path(raw).expanduser())

    @property
    def display_url(self) -> str:
        return f"maildir:{self.path}"

    def _open(self) -> None:
        try:
            # Created here with exist_ok, not by Maildir(create=True): that one fails when
            # two processes create the folder at once, and leaves an existing empty
            # folder without tmp/new/cur.
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.path, create=False)
        except OSError as err:
            raise SenderConfigError(f"maildir:{self.path}: {err.strerror}") from err

    def _send(self, message: OutgoingMessage) -> SendResult:
        assert self._box is not None
        # Maildir files use the platform's line ending; mail clients accept both.
        try:
            key = self._box.add(message.data.replace(b"\r\n", b"\n"))
        except OSError as err:  # disk full, folder removed underneath us: not written
            raise TransientSendError(f"maildir:{self.path}: {err.strerror or err}") from err
        return SendResult(
            message_id=message.message_id,
            reply=f"saved to {self.path / 'new' / key}",
            queue_id=key,
            code=250,
        )
