"""Checks on a message's raw bytes shared by the render, serve and Postfix tests.

Headers are decoded as RFC 2047 6.2 says (white space between adjacent encoded
words is dropped), with :func:`email.header.decode_header`: CPython's address
parser keeps that white space inside display names, unlike mail clients.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.header import decode_header, make_header

ENCODED_WORD = re.compile(rb"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def raw_headers(data: bytes) -> dict[str, bytes]:
    """Each header's raw value by lower-case name, unfolded (CRLF before white space removed)."""
    block = data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    unfolded = re.sub(rb"\n(?=[ \t])", b"", block)
    return {
        name.decode().lower(): value.strip()
        for name, value in (line.split(b":", 1) for line in unfolded.split(b"\n"))
    }


def rfc2047(value: bytes) -> str:
    return str(make_header(decode_header(value.decode("utf-8"))))


def display_name_of(raw: bytes) -> tuple[str, str]:
    """(display name, address) of a raw address header: quoted string, atoms or encoded words."""
    if not raw.endswith(b">"):
        return "", raw.decode()
    phrase, _, address = raw[:-1].rpartition(b"<")
    phrase = phrase.strip()
    if phrase.startswith(b'"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1].decode()), address.decode()
    return rfc2047(phrase), address.decode()


def assert_wire_clean(data: bytes) -> None:
    """No line over 998; QP bodies' lines at most 76, none starting "From " or a lone ".";
    encoded words at most 75, never adjacent."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    assert max(len(line) for line in lines) <= 998
    for value in raw_headers(data).values():
        for word in ENCODED_WORD.findall(value):
            assert len(word) <= 75, word
        assert not re.search(rb"\?==\?", value), value  # adjacent words need white space
    message = parse(data)
    assert not message.defects, message.defects
    for part in message.walk():
        assert not part.defects, part.defects
        if part.is_multipart():
            continue
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        for line in part.get_payload(decode=False).replace("\r\n", "\n").split("\n"):
            assert len(line) <= 76, line
            # RFC 2049 section 3 (8): mbox deliveries turn "From " into ">From ", and some
            # relays eat a lone "."; a careful encoder writes "=46rom " and "=2E" instead.
            assert not line.startswith("From ") and line != ".", line
