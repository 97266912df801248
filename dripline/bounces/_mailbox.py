"""Bounce mailboxes: a Maildir on disk, or an IMAP folder over TLS.

Both read every message without changing it (IMAP ``BODY.PEEK[]`` leaves ``\\Seen``
alone) and move a processed one, never delete it: in a Maildir to ``cur/`` with the
``S`` flag (or into the Maildir++ subfolder ``.FOLDER`` with ``--move-to``), over IMAP
to a folder (``UID MOVE``, RFC 6851; else COPY then expunge that UID, RFC 4315).
"""

from __future__ import annotations

import contextlib
import glob
import imaplib
import os
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigError, DriplineError

__all__ = [
    "DEFAULT_IMAP_FOLDER",
    "BounceMailbox",
    "ImapMailbox",
    "MailboxError",
    "MaildirMailbox",
    "parse_imap_url",
]

DEFAULT_IMAP_FOLDER = "Processed"
_PROCESSED_FLAG = "S"


class MailboxError(DriplineError):
    """The mailbox cannot be read or written (missing folder, login refused, TLS)."""


class BounceMailbox(Protocol):
    """Messages by key; ``move_processed`` takes one out of the way, keeping it."""

    def describe(self) -> str: ...

    def messages(self) -> Iterator[tuple[str, bytes]]: ...

    def move_processed(self, key: str) -> str: ...

    def already_processed(self, key: str) -> bool:
        """True when ``key`` is where :meth:`move_processed` puts mail (nothing to move)."""
        ...

    def close(self) -> None: ...


class MaildirMailbox:
    """A Maildir (``DIR/new`` and ``DIR/cur``); files are renamed, never rewritten."""

    def __init__(self, path: Path, move_to: str | None = None) -> None:
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise MailboxError(f"{path}: not a Maildir (no new/ and cur/ inside)")
        self.path = path
        self.target = path
        if move_to:
            if "/" in move_to or move_to.startswith("."):
                raise MailboxError(f"--move-to {move_to!r}: give a folder name, e.g. Processed")
            self.target = path / f".{move_to}"  # Maildir++, as Dovecot and Courier lay it out

    def describe(self) -> str:
        return f"maildir:{self.path}"

    def messages(self) -> Iterator[tuple[str, bytes]]:
        # Listed first: moving a message into cur/ must not make it come round again.
        listing = [(sub, name) for sub in ("new", "cur") for name in os.listdir(self.path / sub)]
        for sub, name in sorted(listing):
            if name.startswith("."):
                continue
            try:
                data = (self.path / sub / name).read_bytes()
            except FileNotFoundError:  # moved by a mail client meanwhile
                continue
            yield f"{sub}/{name}", data

    def already_processed(self, key: str) -> bool:
        sub, _, name = key.partition("/")
        flags = name.partition(":2,")[2]
        return self.target == self.path and sub == "cur" and _PROCESSED_FLAG in flags

    def _now_at(self, key: str) -> Path | None:
        """Where the message read as ``key`` is now. Dovecot (or any client) serving the same
        Maildir may have renamed it since (new/ -> cur/, flags changed); its unique name,
        the part before ``:2,``, stays."""
        sub, _, name = key.partition("/")
        if (self.path / sub / name).exists():
            return self.path / sub / name
        base = name.partition(":2,")[0]
        for folder in ("cur", "new"):
            for candidate in (self.path / folder).glob(f"{glob.escape(base)}*"):
                if candidate.name == base or candidate.name.startswith(f"{base}:2,"):
                    return candidate
        return None

    def move_processed(self, key: str) -> str:
        for _ in range(3):  # a client may rename it again between the look and the move
            source = self._now_at(key)
            if source is None:
                return "(gone: moved or deleted by another mail client)"
            base, _, info = source.name.partition(":2,")
            flags = "".join(sorted(set(info) | {_PROCESSED_FLAG}))
            for folder in ("tmp", "new", "cur"):
                (self.target / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
            destination = self.target / "cur" / f"{base}:2,{flags}"
            try:
                os.rename(source, destination)
            except FileNotFoundError:
                continue
            return str(destination.relative_to(self.path))
        raise MailboxError(f"{self.describe()}: {key} keeps being renamed by another client")

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    user: str
    folder: str
    cafile: Path | None

    @property
    def display_url(self) -> str:
        return f"imaps://{self.user}@{self.host}:{self.port}/{self.folder}"


def parse_imap_url(url: str) -> ImapConfig:
    """``imaps://USER@HOST[:PORT][/FOLDER][?cafile=PATH]`` (RFC 5092's shape; TLS only).

    The password is never in the URL: it comes from ``DRIPLINE_IMAP_PASSWORD``.
    Raises :class:`ConfigError` for anything else.
    """
    parts = urlsplit(url)
    if parts.scheme != "imaps":
        raise ConfigError(f"{url!r}: use imaps://USER@HOST/FOLDER (IMAP over TLS only)")
    if parts.password is not None:
        raise ConfigError("the IMAP password goes in DRIPLINE_IMAP_PASSWORD, not in the URL")
    if not parts.hostname or not parts.username:
        raise ConfigError(f"{parts.scheme}://...: needs USER@HOST")
    try:
        port = parts.port or 993
    except ValueError as err:
        raise ConfigError(f"imaps URL: {err}") from None
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"cafile"})
    if unknown:
        raise ConfigError(f"imaps URL: unknown option(s) {', '.join(unknown)} (allowed: cafile)")
    cafile = Path(query["cafile"][0]).expanduser() if "cafile" in query else None
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return ImapConfig(parts.hostname, port, unquote(parts.username), folder, cafile)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_UID = re.compile(rb"UID (\d+)")


class ImapMailbox:
    """One IMAP folder over implicit TLS; certificates verified (system CAs + ``cafile``)."""

    def __init__(
        self, config: ImapConfig, password: str, move_to: str | None, timeout: float = 30.0
    ) -> None:
        if not password:
            raise ConfigError("DRIPLINE_IMAP_PASSWORD is not set: the IMAP login needs it")
        self.config = config
        self.move_to = move_to or DEFAULT_IMAP_FOLDER
        context = ssl.create_default_context()
        if config.cafile is not None:
            try:
                context.load_verify_locations(cafile=str(config.cafile))
            except (OSError, ssl.SSLError) as err:
                raise ConfigError(f"cannot load cafile {config.cafile}: {err}") from err
        where = config.display_url
        try:
            self.imap = imaplib.IMAP4_SSL(
                config.host, config.port, ssl_context=context, timeout=timeout
            )
        except (OSError, ssl.SSLError) as err:
            raise MailboxError(f"{where}: cannot connect: {err}") from err
        try:
            self.imap.login(config.user, password)
            kind, _ = self.imap.select(_quote(config.folder))
            if kind != "OK":
                raise MailboxError(f"{where}: no folder {config.folder!r}")
        except imaplib.IMAP4.error as err:
            self.close()
            raise MailboxError(f"{where}: {_text(err)}") from None
        except (OSError, ssl.SSLError) as err:
            self.close()
            raise MailboxError(f"{where}: connection lost: {err}") from err
        self._target_ready = False

    def describe(self) -> str:
        return self.config.display_url

    @contextlib.contextmanager
    def _talking(self, doing: str) -> Iterator[None]:
        """A server that stalls (the socket timeout) or drops the connection mid-run is one
        clear MailboxError; what was recorded so far stays recorded, the rest is left."""
        try:
            yield
        except imaplib.IMAP4.error as err:
            raise MailboxError(f"{self.describe()}: {doing}: {_text(err)}") from err
        except (OSError, ssl.SSLError) as err:
            reason = "no answer (timed out)" if isinstance(err, TimeoutError) else err
            raise MailboxError(f"{self.describe()}: {doing}: {reason}") from err

    def messages(self) -> Iterator[tuple[str, bytes]]:
        with self._talking("listing messages"):
            kind, data = self.imap.uid("SEARCH", "ALL")
        if kind != "OK":
            raise MailboxError(f"{self.describe()}: SEARCH failed: {_text(data)}")
        for uid in (data[0] or b"").split():
            with self._talking(f"reading UID {uid.decode()}"):
                kind, fetched = self.imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
            body = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if kind == "OK" and body is not None:
                yield uid.decode(), bytes(body)

    def move_processed(self, key: str) -> str:
        with self._talking(f"moving UID {key}"):
            return self._move(key)

    def _move(self, key: str) -> str:
        target = _quote(self.move_to)
        if not self._target_ready:
            self.imap.create(target)  # "already exists" is fine
            self._target_ready = True
        if "MOVE" in self.imap.capabilities:
            kind, data = self.imap.uid("MOVE", key, target)
        else:
            kind, data = self.imap.uid("COPY", key, target)
            if kind == "OK":
                self.imap.uid("STORE", key, "+FLAGS.SILENT", "(\\Deleted)")
                self.imap.uid("EXPUNGE", key)  # only this UID (UIDPLUS)
        if kind != "OK":
            raise MailboxError(f"{self.describe()}: moving UID {key} failed: {_text(data)}")
        return f"{self.move_to} (was UID {key})"

    def already_processed(self, key: str) -> bool:
        return False  # processed mail is moved out of the folder read

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, imaplib.IMAP4.error, OSError):
            self.imap.logout()


def _text(value: object) -> str:
    if isinstance(value, BaseException) and value.args:
        return _text(value.args)  # the server's words, not the repr of its bytes
    if isinstance(value, list | tuple):
        return " ".join(_text(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
