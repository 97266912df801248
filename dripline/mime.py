"""RFC 5322 / MIME pieces for the per-step fast path.

The full path builds each message with :class:`email.message.EmailMessage`
(policy SMTP), which costs milliseconds, mostly header parsing and folding.
The fast path assembles the same message from bytes: headers folded and
RFC 2047-encoded here, bodies quoted-printable encoded in pieces (static pieces
once per step, subscriber values per message, joined by soft line breaks so
every line stays under 78 characters).
"""

from __future__ import annotations

import base64
import binascii
import re
from email.message import EmailMessage
from email.policy import SMTP

from .errors import HeaderInjectionError, RenderError

__all__ = [
    "address_problem",
    "check_address",
    "check_header_value",
    "encode_address",
    "encode_header",
    "header_value_problem",
    "qp_piece",
    "soft_break",
]

# CR, LF, NUL, other controls, and what str.splitlines() treats as line ends.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*")
_ADDRESS = re.compile(r"[^@\s<>()\[\]\\,;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_MAX_LINE = 78
_UNFOLDED = SMTP.clone(max_line_length=998)
_WORD_BYTES = 45  # 45 raw bytes -> 60 base64 chars -> a 72-char encoded word


def check_header_value(name: str, value: str) -> str:
    """Refuse CR, LF and NUL in a header value: they would let data write headers.

    ``=?`` is refused too: mail readers (and Python's own ``email`` package when a
    header is assigned) decode it as an RFC 2047 encoded word, so data could make
    a header display as text it does not hold.
    """
    problem = header_value_problem(value)
    if problem is not None:
        raise HeaderInjectionError(f"{name} would hold {problem}: {value[:60]!r}")
    return value


def header_value_problem(value: str) -> str | None:
    """Why ``value`` may not reach a header (see :func:`check_header_value`), or None.

    The import and the sign-up form ask this too, so a value they accept can never
    fail a send later for this reason.
    """
    found = _FORBIDDEN.search(value)
    if found is not None:
        return f"a line break or control character (U+{ord(found.group()):04X})"
    if "=?" in value:
        return "an encoded-word marker '=?'"
    return None


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot be a recipient of a message built here, or None."""
    if header_value_problem(address) is not None:
        return "it holds a line break or control character"
    if not address.isascii():
        return (
            "the part before the @ is not ASCII; such an address needs SMTPUTF8 "
            "(RFC 6531) all the way, which dripline does not send"
        )
    if not _ADDRESS.fullmatch(address):
        return "it is not a plain user@domain address"
    return None


def _encoded_words(value: str) -> list[str]:
    """RFC 2047 'B' encoded words of at most 75 chars, never splitting a character."""
    words: list[str] = []
    chunk = b""
    for char in value:
        raw = char.encode("utf-8", "surrogatepass")
        if len(chunk) + len(raw) > _WORD_BYTES:
            words.append(chunk)  # type: ignore[arg-type]
            chunk = b""
        chunk += raw
    if chunk or not words:
        words.append(chunk)  # type: ignore[arg-type]
    return [f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words]  # type: ignore[arg-type]


_NEEDS_ENCODING = re.compile(r"[^\x20-\x7e]|=\?")


def _needs_encoding(value: str) -> bool:
    return _NEEDS_ENCODING.search(value) is not None


def _fold(name: str, words: list[str]) -> bytes:
    """``Name: word word ...``, folding before a word that would pass 78 characters."""
    lines: list[str] = []
    line = f"{name}:"
    for index, word in enumerate(words):
        if index and len(line) + 1 + len(word) > _MAX_LINE:
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def encode_header(name: str, value: str) -> bytes:
    """One unstructured header (Subject, List-Id ...), folded and encoded as needed."""
    check_header_value(name, value)
    if not _needs_encoding(value):
        if len(name) + 2 + len(value) <= _MAX_LINE:
            return f"{name}: {value}\r\n".encode("ascii")
        # Fold at spaces; runs of spaces survive since unfolding only removes CRLF.
        return _fold(name, value.split(" "))
    return _fold(name, _encoded_words(value))


def _phrase(display_name: str) -> list[str]:
    if _needs_encoding(display_name):
        return _encoded_words(display_name)
    if _ATOM_PHRASE.fullmatch(display_name) and "  " not in display_name:
        return (
            display_name.split(" ")
            if display_name.strip() == display_name
            else ['"' + display_name + '"']
        )
    quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return ['"' + quoted + '"']


def check_address(name: str, address: str) -> str:
    """Refuse an address this message could not carry (non-ASCII local part, odd syntax)."""
    check_header_value(name, address)
    if not address.isascii() or not _ADDRESS.fullmatch(address):
        raise RenderError(f"{name}: not a deliverable ASCII address: {address!r}")
    return address


def encode_address(name: str, display_name: str, address: str) -> bytes:
    """An address header (From, To, Reply-To): ``Display Name <user@example.com>``."""
    check_header_value(name, display_name)
    check_address(name, address)
    if not display_name:
        return f"{name}: {address}\r\n".encode("ascii")
    return _fold(name, [*_phrase(display_name), f"<{address}>"])


def qp_piece(text: str) -> bytes:
    """Quoted-printable for one piece of a body, CRLF line ends, no soft break at its end."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    # A piece may end in white space that now sits before a soft break: protect it.
    if encoded.endswith((b" ", b"\t")):
        encoded = encoded[:-1] + b"=%02X" % encoded[-1]
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def soft_break(encoded: bytes) -> bytes:
    """End a QP piece with a soft line break unless it ends a line already."""
    return encoded if not encoded or encoded.endswith(b"\r\n") else encoded + b"=\r\n"


def build_full_message(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
    """The reference path: ``EmailMessage`` with policy SMTP, text then HTML, both QP."""
    message = EmailMessage(policy=SMTP)
    for name, value in headers:
        check_header_value(name, value)
        message[name] = value
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    # Bodies were encoded at 76 columns above. Headers are written unfolded (up to 998):
    # the stdlib would otherwise RFC 2047-encode a long unsubscribe URL, which mail
    # clients then fail to read as List-Unsubscribe.
    return message.as_bytes(policy=_UNFOLDED)
