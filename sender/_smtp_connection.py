"""One SMTP session: handshake with :mod:`smtplib`, transactions on the raw socket.

smtplib does what it does well and rarely: connect, EHLO, STARTTLS, certificate
checks, AUTH. The per-message transaction is written here because the bench
showed smtplib's line-by-line DATA path to be CPU-bound (~2,100 messages/s, and
threads do not help under the GIL): with PIPELINING (RFC 2920) a message costs
two writes and two reads, MAIL/RCPT/DATA in one packet, the data in another.

Knowing the phase of a failure is the other reason: a connection that dies after
the final ``.`` was written and before the reply leaves the message's fate
unknown, and only this code knows where it was.

One round trip per message: given the message that follows on the session,
:meth:`SmtpConnection.send` writes that message's MAIL/RCPT/DATA right behind this
one's final ``.``, in the same write (RFC 2920 section 3.1: the message content may
be the first command of a pipelined group). The server answers ``.`` and then the
next envelope, so the next message's replies are usually already read when its turn
comes, and its data follows at once.

Deadlines, not just timeouts: ``?timeout=`` bounds each command/reply exchange as a
whole (writing the command or the message data, and reading the complete reply),
and the greeting, each EHLO, STARTTLS and AUTH exchange of the handshake. A server
that trickles one byte every few seconds cannot hold a session longer than that.
Failures with no reply at all (timeouts, refused or dropped connections) carry
``connection_failure`` so the dispatcher can stop trying a dead relay.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ._outcome import Phase, Reply, error_for_reply, result_for_reply
from ._smtp_url import SmtpConfig, is_loopback
from .base import (
    OutgoingMessage,
    PermanentSendError,
    SenderConfigError,
    SendError,
    SendResult,
    TransientSendError,
)

__all__ = ["SmtpConnection", "tls_context"]

log = logging.getLogger("dripline.sender.smtp")

_BARE_NEWLINE = re.compile(rb"\r?\n")
_DOT_LINE = re.compile(rb"\n\.")
_MAX_LINE = 8192
_TLS_RECORD = 16384  # the most plaintext one TLS record carries (RFC 8446 5.1)


T = TypeVar("T")


class _ConnectionDropped(Exception):
    """The server closed the connection or sent something that is not SMTP."""


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib with a total deadline (``timeout``) on each reply and on the TLS handshake.

    smtplib's timeout is per socket read; past the deadline a timer shuts the socket
    down, so the blocked read returns and smtplib reports the connection closed.
    """

    expired = False

    def _within(self, call: Callable[[], T]) -> T:
        timer = threading.Timer(self.timeout, self._expire)  # type: ignore[arg-type]
        timer.daemon = True
        timer.start()
        try:
            return call()
        finally:
            timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def getreply(self) -> tuple[int, bytes]:
        return self._within(super().getreply)

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        return self._within(lambda: super(_DeadlineSMTP, self).starttls(*args, **kwargs))


class _DeadlineSMTPSSL(_DeadlineSMTP, smtplib.SMTP_SSL):
    """The same for implicit TLS (the TLS handshake itself has the per-read timeout)."""


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """System CAs plus ``?cafile``; hostname checks and verification stay on."""
    context = ssl.create_default_context()
    if config.cafile is not None:
        try:
            context.load_verify_locations(cafile=str(config.cafile))
        except (OSError, ssl.SSLError) as err:
            raise SenderConfigError(
                f"{config.display_url}: cannot load cafile {config.cafile}: {err}"
            ) from err
    return context


def wire_data(data: bytes) -> bytes:
    """The message as DATA carries it: CRLF lines, leading dots doubled, ``.`` line at the end."""
    if data.count(b"\n") != data.count(b"\r\n"):
        data = _BARE_NEWLINE.sub(b"\r\n", data)
    if data.startswith(b"."):
        data = b"." + data
    # A regex finds "\n." several times faster than bytes.replace scans for "\r\n."
    # (a literal-prefix search), and most messages have no line starting with a dot.
    if _DOT_LINE.search(data) is not None:
        data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class SmtpConnection:
    """A reusable session to one relay; not thread-safe (the pool hands it to one thread)."""

    def __init__(self, config: SmtpConfig, context: ssl.SSLContext | None) -> None:
        self._config = config
        self._context = context
        self._smtp: smtplib.SMTP | None = None
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._deadline = 0.0  # time.monotonic() by which the current exchange must end
        self._features: dict[str, str] = {}
        self.transactions = 0  # on the current session: >0 means a reused connection
        # The message whose MAIL/RCPT/DATA went out behind the last message's data (and
        # those commands): the server is waiting for its data, and only it may come next.
        self._ahead: tuple[OutgoingMessage, list[bytes]] | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Open, greet, secure and log in; raises SenderConfigError or TransientSendError.

        A TransientSendError from here has ``unreachable`` set: no session could be had at
        all, so the rest of a batch need not wait for the same timeout one by one.
        """
        try:
            self._handshake()
        except TransientSendError as err:
            err.unreachable = True  # type: ignore[attr-defined]
            raise

    def _handshake(self) -> None:
        cfg = self._config
        where = cfg.display_url
        smtp: _DeadlineSMTP | None = None
        try:
            if cfg.implicit_tls:
                smtp = _DeadlineSMTPSSL(timeout=cfg.timeout, context=self._context)
            else:
                smtp = _DeadlineSMTP(timeout=cfg.timeout)
            self._smtp = smtp
            # What SMTP(host) sets before connecting: TLS checks the certificate against it.
            smtp._host = cfg.host  # type: ignore[attr-defined]
            smtp.connect(cfg.host, cfg.port)
            smtp.ehlo_or_helo_if_needed()
            if cfg.starttls != "off":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self._context)
                    smtp.ehlo()
                elif cfg.starttls == "required":
                    raise SenderConfigError(f"{where}: the server does not offer STARTTLS")
            if cfg.user is not None:
                encrypted = isinstance(smtp.sock, ssl.SSLSocket)
                if not encrypted and not is_loopback(cfg.host):
                    raise SenderConfigError(f"{where}: refusing to log in without TLS")
                assert cfg.password is not None  # parse_smtp_url requires it with a user
                smtp.login(cfg.user, cfg.password)
        except SenderConfigError:
            self._abort()
            raise
        except smtplib.SMTPAuthenticationError as err:
            self._abort()
            reply = Reply(err.smtp_code, _text(err.smtp_error))
            if 400 <= err.smtp_code < 500:
                raise TransientSendError(f"{where}: login failed for now: {reply}") from None
            raise SenderConfigError(f"{where}: login refused for {cfg.user!r}: {reply}") from None
        except smtplib.SMTPNotSupportedError as err:
            self._abort()
            raise SenderConfigError(f"{where}: {err}") from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError) as err:
            self._abort()  # the connection died mid-handshake: the network, not the setup
            raise _no_reply(f"{where}: TLS handshake interrupted: {err}", smtp) from err
        except (ssl.SSLError, ssl.CertificateError) as err:
            self._abort()  # a certificate or protocol mismatch will not fix itself
            raise SenderConfigError(f"{where}: TLS failed: {err}") from err
        except smtplib.SMTPResponseException as err:  # a refused greeting, EHLO or STARTTLS
            self._abort()
            reply = Reply(err.smtp_code, _text(err.smtp_error))
            if 400 <= err.smtp_code < 500:
                raise TransientSendError(
                    f"{where}: not ready: {reply}", code=err.smtp_code
                ) from err
            raise SenderConfigError(f"{where}: the server refuses us: {reply}") from err
        except (OSError, smtplib.SMTPServerDisconnected) as err:  # refused, timed out, dropped
            self._abort()
            raise _no_reply(f"{where}: cannot connect: {err}", smtp) from err
        except smtplib.SMTPException as err:  # e.g. no AUTH mechanism we both speak
            self._abort()
            raise SenderConfigError(f"{where}: {err}") from None
        self._sock = smtp.sock
        self._features = dict(smtp.esmtp_features)
        if not self._config.pipelining:  # ?pipelining=off: as if the relay never offered it
            self._features.pop("pipelining", None)
        self.transactions = 0
        log.debug("connected to %s (pipelining=%s)", where, "pipelining" in self._features)

    def send(
        self, message: OutgoingMessage, following: OutgoingMessage | None = None
    ) -> SendResult:
        """Run one transaction; on failure the session is reset for the next message or closed.

        A :class:`TransientSendError` whose ``retry_now`` is true failed before the server
        accepted MAIL FROM on a reused connection (it had gone stale): the message never
        reached the server and may go again at once on a fresh connection.

        ``following`` is the message to be sent next on this session, if known: when the
        server offers PIPELINING its envelope goes out with this message's data (see the
        module docstring), and the next call must be ``send(following, ...)``. Any other
        call, and :meth:`drop_unsent`, drop the session instead: the server is waiting
        for data that was never sent, so nothing of that message is delivered.
        """
        if self._ahead is not None and self._ahead[0] is not message:
            self._abort()
        if self._sock is None:
            self.connect()
        self.transactions += 1
        reused = self.transactions > 1
        written, self._ahead = self._ahead, None
        commands = written[1] if written is not None else self._envelope_commands(message)
        pipelining = "pipelining" in self._features
        # Built before any exchange: nothing may fail between the 354 and the data.
        ahead = self._envelope_ahead(following) if pipelining else None
        phase = Phase.MAIL
        try:
            if written is not None:
                self._start_exchange()  # the envelope went with the last data; read its replies
            elif pipelining:
                self._start_exchange()  # the envelope is one exchange: one write, N replies
                self._write(b"".join(commands))
            replies: list[Reply] = []
            for index, command in enumerate(commands):
                phase = _envelope_phase(index, len(commands))
                if not pipelining:
                    self._start_exchange()
                    self._write(command)
                replies.append(self._read_reply())
                if replies[-1].closing or (not pipelining and replies[-1].code >= 400):
                    break  # a pipelining server answers every command; lock step stops here
            self._check_envelope(message, replies)
            phase = Phase.MESSAGE
            self._start_exchange()
            self._write_data(wire_data(message.data), ahead)
            if ahead is not None:
                self._ahead = (following, ahead)  # type: ignore[assignment]
            final = self._read_reply()
        except _SessionOver as over:
            self._abort()
            error = over.error
            error.retry_now = reused and over.phase is Phase.MAIL  # type: ignore[attr-defined]
            raise error from None
        except (OSError, _ConnectionDropped) as err:
            self._abort()
            # Until the final "." was written whole the server cannot have queued the message.
            ambiguous = phase is Phase.MESSAGE and not isinstance(err, _WriteFailed)
            what = (
                f"timed out: no complete reply within {self._config.timeout:g} s"
                if isinstance(err, TimeoutError)
                else f"connection lost ({err})"
            )
            detail = " after the message data was sent; it may have been delivered" * ambiguous
            transient = TransientSendError(f"{phase.value}: {what}{detail}", ambiguous=ambiguous)
            transient.retry_now = reused and phase is Phase.MAIL  # type: ignore[attr-defined]
            transient.connection_failure = True  # type: ignore[attr-defined]
            raise transient from err
        except SendError:
            raise  # a refusal: _check_envelope reset the session (RSET) or closed it
        except BaseException:
            self._abort()  # anything else: the session's state is unknown, never reuse it
            raise
        if 200 <= final.code < 300:
            return result_for_reply(message.message_id, final)
        if final.closing:
            self._abort()
        raise error_for_reply(Phase.MESSAGE, final, _only(message.recipients))

    def drop_unsent(self) -> None:
        """Drop the session if it announced a following message that will not be sent now."""
        if self._ahead is not None:
            self._abort()

    def close(self) -> None:
        """Say QUIT and release the socket; never raises. For a healthy session only."""
        self.drop_unsent()  # QUIT after a 354 would be message data, not a command
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.settimeout(min(self._config.timeout, 5.0))
                self._sock.sendall(b"QUIT\r\n")
        self._abort()

    def _abort(self) -> None:
        """Drop the connection without a word: after a failure its state is unknown, and a
        QUIT written into an unfinished DATA would become part of the message."""
        smtp, self._smtp, self._sock = self._smtp, None, None
        self._buffer.clear()
        self._ahead = None
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    # -- the transaction --------------------------------------------------

    def _envelope_commands(self, message: OutgoingMessage) -> list[bytes]:
        params = b""
        addresses = (message.envelope_from, *message.recipients)
        if any(not address.isascii() for address in addresses):
            if "smtputf8" not in self._features:
                raise PermanentSendError(
                    "a non-ASCII address needs SMTPUTF8, which the relay lacks"
                )
            params += b" SMTPUTF8"
        if not message.data.isascii() and "8bitmime" in self._features:
            params += b" BODY=8BITMIME"
        commands = [b"MAIL FROM:<" + _address(message.envelope_from) + b">" + params + b"\r\n"]
        commands += [b"RCPT TO:<" + _address(rcpt) + b">\r\n" for rcpt in message.recipients]
        commands.append(b"DATA\r\n")
        return commands

    def _envelope_ahead(self, following: OutgoingMessage | None) -> list[bytes] | None:
        """The commands to pipeline behind this message's data, or None to send none."""
        if following is None or not following.recipients:
            return None
        try:
            return self._envelope_commands(following)
        except Exception:  # the relay cannot take it (no SMTPUTF8...): its own send says why
            return None

    def _check_envelope(self, message: OutgoingMessage, replies: list[Reply]) -> None:
        """Raise unless MAIL and at least one RCPT were accepted and DATA answered 354."""
        mail, *rest = replies
        if mail.closing:
            raise _SessionOver(Phase.MAIL, error_for_reply(Phase.MAIL, mail))
        rcpt_replies = rest[: len(message.recipients)]
        data = rest[len(message.recipients)] if len(rest) > len(message.recipients) else None
        for recipient, reply in zip(message.recipients, rcpt_replies, strict=False):
            if reply.closing:
                raise _SessionOver(Phase.RCPT, error_for_reply(Phase.RCPT, reply, recipient))
        if data is not None and data.closing:
            raise _SessionOver(Phase.DATA, error_for_reply(Phase.DATA, data))
        error: SendError | None = None
        if not 200 <= mail.code < 300:
            error = error_for_reply(Phase.MAIL, mail)
        elif len(rcpt_replies) < len(message.recipients) or any(
            not 200 <= reply.code < 300 for reply in rcpt_replies
        ):
            # One message per subscriber: a refused recipient fails the whole message,
            # so a retry never reaches the others twice.
            failed = next(
                (rcpt, reply)
                for rcpt, reply in zip(message.recipients, rcpt_replies, strict=False)
                if not 200 <= reply.code < 300
            )
            error = error_for_reply(Phase.RCPT, failed[1], failed[0])
        elif data is None or data.code != 354:
            error = error_for_reply(Phase.DATA, data or Reply(0, "no reply"))
        if error is None:
            return
        try:
            self._start_exchange()
            if data is not None and data.code == 354:
                # A pipelining server said "go ahead" despite the refusal: end the empty message.
                self._write(b".\r\n")
                self._read_reply()
            self._reset()
        except (OSError, _ConnectionDropped):
            self._abort()  # the refusal is the news; the next message gets a fresh session
        raise error

    def _reset(self) -> None:
        """RSET after a refusal so the next message starts clean; a refused RSET ends it."""
        self._start_exchange()
        self._write(b"RSET\r\n")
        reply = self._read_reply()
        if not 200 <= reply.code < 300:
            raise _ConnectionDropped(f"RSET refused: {reply}")

    # -- the wire ---------------------------------------------------------

    def _start_exchange(self) -> None:
        self._deadline = time.monotonic() + self._config.timeout

    def _remaining(self) -> float:
        """Seconds left in this exchange; TimeoutError once there are none."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete reply within {self._config.timeout:g} s")
        return left

    def _write(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            # sendall's timeout bounds the whole call (Python >= 3.5), not each chunk.
            self._sock.settimeout(self._remaining())
            self._sock.sendall(data)
        except OSError as err:  # timeouts too: what we wrote did not reach the server whole
            raise _WriteFailed.after(err) from err

    def _write_data(self, data: bytes, ahead: list[bytes] | None) -> None:
        """Write the message data, and the next envelope behind it in the same write.

        A failure before the final ``.`` was taken whole is a :class:`_WriteFailed` (the
        message cannot have been queued); once it was, it is a plain OSError, so the
        message is ambiguous, whatever became of the envelope behind it.
        """
        if ahead is None:
            self._write(data)
            return
        assert self._sock is not None
        payload = memoryview(data + b"".join(ahead))
        # A TLS send is all or nothing: one that spans several records and fails counts
        # none, though the record holding the "." may have gone. At most one record
        # (16 KiB of plaintext) per send keeps the count exact; OpenSSL makes the same records.
        most = _TLS_RECORD if isinstance(self._sock, ssl.SSLSocket) else len(payload)
        taken = 0  # bytes the kernel (or the TLS layer) accepted
        try:
            while taken < len(payload):
                self._sock.settimeout(self._remaining())
                taken += self._sock.send(payload[taken : taken + most])
        except OSError as err:
            if taken >= len(data):
                raise
            raise _WriteFailed.after(err) from err

    def _read_reply(self) -> Reply:
        lines: list[str] = []
        while True:
            line = self._read_line()
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                raise _ConnectionDropped(f"not an SMTP reply: {line[:80]!r}")
            lines.append(line[4:].decode("utf-8", "replace").strip())
            if line[3:4] != b"-":
                return Reply(int(line[:3]), "\n".join(lines))

    def _read_line(self) -> bytes:
        assert self._sock is not None
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                line = bytes(buffer[:end]).rstrip(b"\r")
                del buffer[: end + 1]
                return line
            if len(buffer) > _MAX_LINE:
                raise _ConnectionDropped("reply line too long")
            self._sock.settimeout(self._remaining())
            chunk = self._sock.recv(65536)
            if not chunk:
                raise _ConnectionDropped("the server closed the connection")
            buffer += chunk


class _WriteFailed(_ConnectionDropped):
    """Writing failed: whatever we were sending did not reach the server whole."""

    @classmethod
    def after(cls, err: OSError) -> _WriteFailed:
        return cls("timed out" if isinstance(err, TimeoutError) else str(err))


class _SessionOver(Exception):
    """The server answered 421: it is closing this connection."""

    def __init__(self, phase: Phase, error: SendError) -> None:
        super().__init__(str(error))
        self.phase = phase
        self.error = error


def _no_reply(text: str, smtp: _DeadlineSMTP | None) -> TransientSendError:
    """A handshake that got no (complete) reply: refused, dropped, or past its deadline."""
    if smtp is not None and smtp.expired:
        text += f" (no complete reply within {smtp.timeout:g} s)"
    error = TransientSendError(text)
    error.connection_failure = True  # type: ignore[attr-defined]
    return error


def _envelope_phase(index: int, count: int) -> Phase:
    if index == 0:
        return Phase.MAIL
    return Phase.DATA if index == count - 1 else Phase.RCPT


def _address(address: str) -> bytes:
    if any(char in address for char in "\r\n<>\0"):
        raise PermanentSendError(f"invalid envelope address {address!r}")
    return address.encode("utf-8")


def _only(recipients: tuple[str, ...]) -> str | None:
    return recipients[0] if len(recipients) == 1 else None


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
