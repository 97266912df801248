"""Real SMTP servers for the sender tests: aiosmtpd on 127.0.0.1, recording what it received.

``FaultyHandler`` misbehaves on purpose, chosen by the recipient's local part:

- ``defer-once@``: 451 4.3.0 the first time that address is seen, then accepted.
- ``unknown@``: 550 5.1.1 (bad mailbox), every time.
- ``policy@``: 550 5.7.1 (relay policy, not the mailbox), every time.
- ``close421@``: 421 at RCPT and the connection closed, the first time only.
- ``drop-in-data@``: the whole message is received (and recorded), then the connection is
  cut before the reply: the ambiguous case.
- ``stall@``: RCPT is answered only after ``stall_seconds``, the first time only.
- ``stall-in-data@``: the whole message is received (and recorded), and the reply comes
  only after ``stall_seconds``: ambiguous for a client that gave up waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email
import email.policy
import ipaddress
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    at: float  # time.monotonic() when the end of data arrived
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)

    @property
    def message_id(self) -> str:
        return email.message_from_bytes(self.data, policy=email.policy.default)["Message-ID"]


class RecordingHandler:
    """Accepts everything and keeps it; replies like Postfix, with a queue id."""

    def __init__(self, *, pipelining: bool = False) -> None:
        self.pipelining = pipelining
        self.received: list[Received] = []
        self.sessions: set[SMTPServer] = set()
        self.lock = threading.Lock()

    def message_ids(self) -> Counter[str]:
        with self.lock:
            return Counter(item.message_id for item in self.received)

    async def handle_EHLO(
        self, server: SMTPServer, session: Session, envelope: Envelope, hostname: str, responses
    ) -> list[str]:
        session.host_name = hostname
        self.sessions.add(server)
        if self.pipelining:  # aiosmtpd reads commands one by one, so pipelining just works
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.received.append(
                Received(
                    envelope.mail_from or "",
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                    time.monotonic(),
                    server.transport.get_extra_info("ssl_object") is not None,
                )
            )
            number = len(self.received)
        return f"250 2.0.0 Ok: queued as Q{number:05d}"

    def drop_all_connections(self, loop: asyncio.AbstractEventLoop) -> None:
        """Like an MTA's idle timeout: 421, then close every open session."""

        def drop() -> None:
            for server in list(self.sessions):
                if server.transport is not None:
                    server.transport.write(b"421 4.4.2 Idle timeout, closing\r\n")
                    server.transport.close()
            self.sessions.clear()

        done = threading.Event()

        def drop_then_tell() -> None:
            drop()
            done.set()

        loop.call_soon_threadsafe(drop_then_tell)
        assert done.wait(30), "the server loop did not drop its sessions"


class GatedHandler(RecordingHandler):
    """Holds every DATA reply until ``sessions`` sessions have said EHLO (or ``deadline`` s).

    A client that spreads a batch over N sessions then has to open them all: the first
    session is stuck waiting for its reply, so the work can only go on over the others.
    Without the gate, a fast first worker may send the whole batch before the other
    threads are even scheduled, and the session count depends on the machine's load.
    """

    def __init__(self, sessions: int, *, deadline: float = 20.0) -> None:
        super().__init__(pipelining=True)
        self.wanted = sessions
        self.deadline = deadline
        self.open_before_first_reply = 0  # sessions seen when the gate opened
        self.gate_closes_at: float | None = None  # event-loop time; 0.0 once open

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        loop = asyncio.get_running_loop()
        if self.gate_closes_at is None:
            self.gate_closes_at = loop.time() + self.deadline
        # Past the deadline the gate stays open: a broken pool fails the test, never hangs it.
        while len(self.sessions) < self.wanted and loop.time() < self.gate_closes_at:
            await asyncio.sleep(0.005)
        self.gate_closes_at = 0.0
        if not self.open_before_first_reply:
            self.open_before_first_reply = len(self.sessions)
        return await super().handle_DATA(server, session, envelope)


class FaultyHandler(RecordingHandler):
    def __init__(self, *, pipelining: bool = False, stall_seconds: float = 2.0) -> None:
        super().__init__(pipelining=pipelining)
        self.stall_seconds = stall_seconds
        self.seen: Counter[str] = Counter()

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local = address.split("@")[0]
        self.seen[local] += 1
        first = self.seen[local] == 1
        if local == "unknown":
            return "550 5.1.1 <unknown@example.test>: Recipient address rejected: User unknown"
        if local == "policy":
            return "550 5.7.1 Relaying denied by policy"
        if local == "defer-once" and first:
            return "451 4.3.0 Temporary lookup failure, try again"
        if local == "close421" and first:
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down, closing channel"
        if local == "stall" and first:
            await asyncio.sleep(self.stall_seconds)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if any(rcpt.startswith("drop-in-data@") for rcpt in envelope.rcpt_tos):
            server.transport.abort()  # the message arrived whole; the reply never leaves
            await asyncio.sleep(3600)  # cancelled when aiosmtpd sees the connection lost
        if any(rcpt.startswith("stall-in-data@") for rcpt in envelope.rcpt_tos):
            await asyncio.sleep(self.stall_seconds)
        return reply


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connection_attempts(listener: socket.socket) -> int:
    """How many connections reached a listening socket that never accepted them (its backlog)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            accepted, _ = listener.accept()
        except BlockingIOError:
            return count
        accepted.close()
        count += 1


@contextlib.contextmanager
def running_server(handler: RecordingHandler, **smtp_options: Any) -> Iterator[Controller]:
    """An aiosmtpd server on 127.0.0.1 (its port is ``controller.port``) for a ``with`` block."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **smtp_options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


class PasswordCheck:
    """An aiosmtpd authenticator that accepts one user and notes the mechanisms used."""

    def __init__(self, user: str, password: str, *, logins_allowed: int | None = None) -> None:
        self.user, self.password = user, password
        self.mechanisms: list[str] = []
        self.logins_allowed = logins_allowed  # then the password "changes": all refused

    def __call__(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = isinstance(data, LoginPassword) and (
            data.login.decode() == self.user and data.password.decode() == self.password
        )
        if ok and self.logins_allowed is not None:
            ok = self.logins_allowed > 0
            self.logins_allowed -= 1
        return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certificates(folder: Path, hostname: str = "localhost") -> Certificates:
    """A throwaway CA and a server certificate it signed, for localhost and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dripline test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _RawServer:
    """A raw SMTP server on 127.0.0.1: one thread per session runs ``_session``."""

    def __init__(self) -> None:
        self.connections = 0  # sessions accepted
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        raise NotImplementedError


class StallingServer(_RawServer):
    """A raw SMTP server on 127.0.0.1 that stalls on purpose (``mode``):

    - ``"greeting"``: the greeting is trickled, one byte every ``gap`` seconds, never ending;
    - ``"after-data"``: everything is answered at once except the reply to the final
      ``.``, which is trickled the same way (the message was received: ambiguous);
    - ``"silent-data"``: the same, but nothing at all comes after the final ``.``.

    ``connections`` counts sessions accepted, ``messages`` the messages received whole.
    """

    def __init__(self, mode: str, gap: float = 0.3) -> None:
        super().__init__()
        self.mode, self.gap = mode, gap
        self.messages = 0

    def _trickle(self, conn: socket.socket, text: bytes) -> None:
        while not self._stop.is_set():
            for byte in text:
                if self._stop.wait(self.gap):
                    return
                conn.sendall(bytes([byte]))
            text = b" "  # the line never ends

    def _session(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            if self.mode == "greeting":
                self._trickle(conn, b"220 stalling.example ESMTP")
                return
            conn.sendall(b"220 stalling.example ESMTP\r\n")
            reader = conn.makefile("rb")
            in_data = False
            for line in reader:
                if self._stop.is_set():
                    return
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        self.messages += 1
                        if self.mode == "silent-data":
                            self._stop.wait()
                            return
                        self._trickle(conn, b"250 2.0.0 Ok: queued")
                        return
                    continue
                command = line[:4].upper()
                if command == b"DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    in_data = True
                elif command == b"QUIT":
                    conn.sendall(b"221 Bye\r\n")
                    return
                elif command == b"EHLO":
                    conn.sendall(b"250-stalling.example\r\n250 8BITMIME\r\n")
                else:
                    conn.sendall(b"250 Ok\r\n")


class LookaheadServer(_RawServer):
    """A raw SMTP server on 127.0.0.1 that notes, for each message, whether the client had
    already sent the next MAIL FROM when the message's final ``.`` arrived (RFC 2920 3.1
    pipelining across messages), before it answers that ``.``.

    It waits up to ``patience`` seconds for the next command before answering, so a client
    that waits for the reply first costs that long per message, and is seen doing so.
    ``ahead`` holds one bool per message received, in order; ``messages`` the data of each;
    ``grouped`` one bool per MAIL FROM: whether the next command had come with it (MAIL,
    RCPT and DATA pipelined in one write, RFC 2920), which a client waiting for each reply
    cannot do.
    """

    def __init__(self, *, pipelining: bool = True, patience: float = 0.5) -> None:
        super().__init__()
        self.pipelining, self.patience = pipelining, patience
        self.ahead: list[bool] = []
        self.messages: list[bytes] = []
        self.grouped: list[bool] = []

    def _session(self, conn: socket.socket) -> None:
        buffer = bytearray()

        def line(wait: float | None = 30.0) -> bytes | None:
            """The next line, or None when none came within ``wait`` seconds."""
            deadline = time.monotonic() + (wait or 0.0)
            while b"\n" not in buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                conn.settimeout(left)
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    return None
                if not chunk:
                    raise ConnectionError("closed")
                buffer.extend(chunk)
            end = buffer.index(b"\n") + 1
            text = bytes(buffer[:end])
            del buffer[:end]
            return text

        with contextlib.suppress(OSError, ConnectionError), conn:
            conn.sendall(b"220 lookahead.example ESMTP\r\n")
            data: list[bytes] | None = None
            pending: bytes | None = None  # a command read early, while waiting after "."
            while not self._stop.is_set():
                text = pending if pending is not None else line()
                pending = None
                if text is None:
                    return
                if data is not None:  # inside DATA
                    if text != b".\r\n":
                        data.append(text[1:] if text.startswith(b".") else text)  # unstuffed
                        continue
                    self.messages.append(b"".join(data))
                    data = None
                    pending = line(self.patience)  # did the next envelope come with the "."?
                    self.ahead.append(pending is not None and pending[:4].upper() == b"MAIL")
                    conn.sendall(b"250 2.0.0 Ok: queued\r\n")
                    continue
                command = text[:4].upper()
                if command == b"EHLO":
                    extra = b"250-PIPELINING\r\n" if self.pipelining else b""
                    conn.sendall(b"250-lookahead.example\r\n" + extra + b"250 8BITMIME\r\n")
                elif command == b"DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    data = []
                elif command == b"QUIT":
                    conn.sendall(b"221 Bye\r\n")
                    return
                else:
                    if command == b"MAIL":
                        self.grouped.append(b"\n" in buffer)
                    conn.sendall(b"250 Ok\r\n")
