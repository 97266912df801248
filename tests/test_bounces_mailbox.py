"""The IMAP mailbox against a server that misbehaves mid-run: a TLS listener on 127.0.0.1
that logs in and selects, then stalls or hangs up when asked for the messages."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dripline.bounces import ImapMailbox, MailboxError, parse_imap_url


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(params=["stall", "hang-up"])
def bad_server(request, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(imaps URL, how it misbehaves) of a one-connection server."""
    cert_file, key_file = _certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            stream = tls.makefile("rwb")
            stream.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
            stream.flush()
            for line in stream:
                tag, command = [*line.split(b" "), b""][:2]
                command = command.strip().upper()
                if command == b"CAPABILITY":
                    stream.write(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
                elif command == b"LOGIN":
                    stream.write(tag + b" OK logged in\r\n")
                elif command == b"SELECT":
                    stream.write(b"* 2 EXISTS\r\n" + tag + b" OK [READ-WRITE] selected\r\n")
                elif command == b"UID":
                    if request.param == "stall":
                        done.wait(30)  # never answers while the client waits
                    return  # "hang-up": the connection closes
                else:
                    stream.write(tag + b" OK done\r\n")
                stream.flush()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"imaps://bounces@127.0.0.1:{port}/INBOX?cafile={cert_file}", request.param
    done.set()
    thread.join(timeout=10)
    listener.close()


def test_a_server_that_stalls_or_hangs_up_mid_run_is_one_clear_error(bad_server):
    url, how = bad_server
    mailbox = ImapMailbox(parse_imap_url(url), "password", None, timeout=1.0)
    try:
        with pytest.raises(MailboxError) as raised:
            list(mailbox.messages())
    finally:
        mailbox.close()
    message = str(raised.value)
    assert message.startswith("imaps://bounces@127.0.0.1:") and "listing messages" in message
    if how == "stall":
        assert "timed out" in message
