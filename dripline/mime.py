"""RFC 5322 / MIME writing shared by both render paths: headers, quoted-printable, the message.

Both paths write bytes with these functions, so a message looks the same whichever
path made it. The rules kept (each one a fault seen in real mail tools):

- quoted-printable lines are at most 76 characters, soft break included (RFC 2045 6.7);
- encoded words are at most 75 characters, never split a character, and are
  separated by folding white space (RFC 2047 2, 5); text holding ``=?`` is
  encoded, so it reads back as the text it is;
- header lines are folded near 78 characters and never pass 998 (RFC 5322 2.1.1);
- header values refuse line breaks and control characters (they would let data
  write headers) and invisible characters (:mod:`dripline._invisible`).

The text part is ``format=flowed`` (RFC 3676, see :mod:`dripline._flowed`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from ._invisible import INVISIBLE, describe
from .errors import HeaderInjectionError, RenderError

__all__ = [
    "MAX_QP_LINE",
    "address_problem",
    "check_address",
    "check_header_injection",
    "check_header_value",
    "encode_address",
    "encode_header",
    "encode_list_id",
    "header_value_problem",
    "multipart_body",
    "multipart_head",
    "qp_encode",
    "raw_header",
    "soft_break",
]

# CR, LF, NUL, other controls, and what str.splitlines() treats as line ends.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*")
_ADDRESS = re.compile(r"[^@\s<>()\[\]\\,;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_MAX_LINE = 78
_HARD_LIMIT = 998
_LONG_WORD = 60  # a word this long could not fold under 78 after "Subject: "
_WORD_BYTES = 45  # 45 raw bytes -> 60 base64 chars -> a 72-char encoded word
MAX_QP_LINE = 76
_ANY_BAD = re.compile(f"{_FORBIDDEN.pattern}|{INVISIBLE.pattern}")


def check_header_injection(name: str, value: str) -> str:
    """Refuse CR, LF, NUL and other C0 controls: they would let data write headers."""
    if _FORBIDDEN.search(value):
        raise HeaderInjectionError(
            f"{name} would hold a line break or control character: {value[:60]!r}"
        )
    return value


def check_header_value(name: str, value: str) -> str:
    """Refuse what no header should carry; return ``value`` unchanged.

    Raises:
        HeaderInjectionError: CR, LF, NUL or another C0 control (data writing headers).
        RenderError: an invisible character: C1 control, U+FFFD, zero-width space,
            bidi override (see :mod:`dripline._invisible`).
    """
    if _ANY_BAD.search(value) is None:  # one search for the common, clean case
        return value
    check_header_injection(name, value)
    found = INVISIBLE.search(value)
    if found:
        raise RenderError(f"{name} holds {describe(found.group())}: {value[:60]!r}")
    return value


# No UTF-8 encoder (SMTP, the database driver, JSON answers) can write these.
_SURROGATE = re.compile("[\ud800-\udfff]")


def header_value_problem(value: str) -> str | None:
    """Why a subscriber's ``value`` may not be stored (import, sign-up form), or None.

    The import and the sign-up form ask this, so a value they accept can never fail
    a send later, whichever template (subject included) it ends up in: line breaks
    and controls (what :func:`check_header_value` refuses as injection), invisible
    characters (what it refuses in a subject) and, to keep stored data plain, ``=?``
    (which the renderer itself would encode).
    """
    found = _FORBIDDEN.search(value)
    if found is not None:
        return f"a line break or control character (U+{ord(found.group()):04X})"
    found = _SURROGATE.search(value)
    if found is not None:  # JSON's "\ud800", or a byte that is not UTF-8 (surrogateescape)
        return f"a lone surrogate (U+{ord(found.group()):04X}), which is not valid Unicode text"
    found = INVISIBLE.search(value)
    if found is not None:
        return describe(found.group())
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


def _encoded_words(value: str, first_room: int = _MAX_LINE) -> list[str]:
    """RFC 2047 'B' encoded words of at most 75 chars, never splitting a character.

    ``first_room``: columns left on the header's first line, so the first word fits there.
    """
    # 12 characters of "=?utf-8?b?" and "?=", then 4 base64 characters per 3 bytes.
    limit = min(_WORD_BYTES, max(3, (first_room - 12) // 4 * 3))
    chunks: list[bytes] = []
    chunk = b""
    for char in value:
        raw = char.encode("utf-8", "surrogatepass")
        if chunk and len(chunk) + len(raw) > limit:
            limit = _WORD_BYTES
            chunks.append(chunk)
            chunk = b""
        chunk += raw
    if chunk or not chunks:
        chunks.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(c).decode('ascii')}?=" for c in chunks]


_NEEDS_ENCODING = re.compile(r"[^\x20-\x7e]|=\?|^ | $|  ")


def _needs_encoding(value: str) -> bool:
    """Non-ASCII, ``=?``, white space a reader would drop, or a word too long to fold."""
    if _NEEDS_ENCODING.search(value):
        return True
    return len(value) > _LONG_WORD and any(len(w) > _LONG_WORD for w in value.split(" "))


def _fold(name: str, words: Iterable[str]) -> bytes:
    """``Name: word word ...``, folding before a word that would pass 78 characters."""
    words = list(words)
    joined = " ".join(words)
    if len(name) + 2 + len(joined) <= _MAX_LINE:
        return f"{name}: {joined}\r\n".encode()  # the common case, kept fast
    lines: list[str] = []
    line = f"{name}:"
    for index, word in enumerate(words):
        if index and len(line) + 1 + len(word) > _MAX_LINE:
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    if any(len(line) > _HARD_LIMIT for line in lines):
        raise RenderError(f"{name} holds a word longer than a header line may be (998)")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def encode_header(name: str, value: str) -> bytes:
    """One unstructured header (Subject), folded, RFC 2047-encoded when it must be.

    Raises:
        RenderError: as :func:`check_header_value`.
    """
    check_header_value(name, value)
    if not _needs_encoding(value):
        return _fold(name, value.split(" "))
    return _fold(name, _encoded_words(value, _MAX_LINE - len(name) - 2))


def raw_header(name: str, value: str) -> bytes:
    """A structured header written as is (Date, Message-ID, List-Unsubscribe): never encoded.

    Clients read List-Unsubscribe's URLs literally; an encoded word there would break it.
    """
    check_header_value(name, value)
    if not value.isascii():
        raise RenderError(f"{name} must be ASCII: {value[:60]!r}")
    return _fold(name, value.split(" "))


def _phrase(display_name: str, first_room: int) -> list[str]:
    if _needs_encoding(display_name):
        return _encoded_words(display_name, first_room)
    if _ATOM_PHRASE.fullmatch(display_name):
        return display_name.split(" ")
    quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return ['"' + quoted + '"']


def check_address(name: str, address: str) -> str:
    """Refuse an address this message could not carry (non-ASCII local part, odd syntax)."""
    check_header_value(name, address)
    if not address.isascii() or not _ADDRESS.fullmatch(address):
        raise RenderError(f"{name}: not a deliverable ASCII address: {address!r}")
    return address


def encode_address(name: str, display_name: str, address: str) -> bytes:
    """An address header (From, To, Reply-To): ``Display Name <user@example.com>``.

    Raises:
        RenderError: the name holds a control or invisible character, or the address is
            not a plain ASCII ``user@domain`` (see :func:`address_problem`).
    """
    check_header_value(name, display_name)
    check_address(name, address)
    if not display_name:
        return _fold(name, [address])
    return _fold(name, [*_phrase(display_name, _MAX_LINE - len(name) - 2), f"<{address}>"])


def encode_list_id(phrase: str, list_id: str) -> bytes:
    """``List-Id: Campaign name <slug.example.com>`` (RFC 2919), the phrase encoded as needed."""
    check_header_value("List-Id", list_id)
    words = [*_phrase(phrase, _MAX_LINE - 9), f"<{list_id}>"] if phrase else [f"<{list_id}>"]
    return _fold("List-Id", words)


def _fit(line: bytes, limit: int, out: list[bytes]) -> None:
    """Append ``line`` to ``out`` cut by soft breaks so no piece passes ``limit``."""
    while len(line) > limit:
        cut = limit - 1  # room for the "=" of the soft break
        # Never cut an "=XX" escape in two.
        if line[cut - 1 : cut] == b"=":
            cut -= 1
        elif line[cut - 2 : cut - 1] == b"=":
            cut -= 2
        out.append(line[:cut] + b"=")
        line = _mbox_safe(line[cut:])
    out.append(line)


# RFC 2049 section 3 (8): mbox deliveries write "From " at a line's start as ">From ", so
# a careful encoder writes "=46rom " there (binascii already writes a lone "." as "=2E").
_FROM_LINE = re.compile(rb"^From ", re.MULTILINE)


def _mbox_safe(encoded: bytes) -> bytes:
    """``encoded`` with every line that starts "From " starting "=46rom " instead."""
    return _FROM_LINE.sub(b"=46rom ", encoded) if b"From " in encoded else encoded


def qp_encode(text: str, *, soft_end: bool = False) -> bytes:
    """Quoted-printable (RFC 2045) with CRLF line ends and no line over 76 characters.

    No line starts with "From " or is a lone "." (RFC 2049 section 3, item 8).

    ``soft_end``: the piece will be followed by a soft line break (``=``), so its
    last line keeps a column free for it. ``binascii`` alone writes 77-character
    lines when a line ends in white space.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    # Every piece starts a line: the fast path puts a soft break before each one.
    encoded = _mbox_safe(encoded)
    if len(encoded) < MAX_QP_LINE:  # one short line (most subscriber values): nothing to cut
        return encoded.replace(b"\n", b"\r\n")
    lines = encoded.split(b"\n")
    last = len(lines) - 1
    if all(len(line) <= MAX_QP_LINE for line in lines) and not (
        soft_end and len(lines[last]) >= MAX_QP_LINE
    ):
        return encoded.replace(b"\n", b"\r\n")
    out: list[bytes] = []
    for index, line in enumerate(lines):
        if index == last and soft_end:
            _fit(line + b"=", MAX_QP_LINE, out)
            out[-1] = out[-1][:-1]
        else:
            _fit(line, MAX_QP_LINE, out)
    return b"\r\n".join(out)


def soft_break(encoded: bytes) -> bytes:
    """End a QP piece made with ``soft_end=True`` with a soft break unless it ends a line."""
    return encoded if not encoded or encoded.endswith(b"\r\n") else encoded + b"=\r\n"


def multipart_head(boundary: str) -> bytes:
    """The MIME headers closing a multipart/alternative message's header block."""
    return (
        b"MIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'.encode()
    )


_PART = (
    b'Content-Type: text/%s; charset="utf-8"%s\r\n'
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)


def multipart_body(boundary: str, text: Iterable[bytes], html: Iterable[bytes]) -> bytes:
    """Two QP-encoded alternatives: the text (format=flowed) part, then the HTML part."""
    mark = boundary.encode()
    return b"".join(
        [
            b"--" + mark + b"\r\n",
            _PART % (b"plain", b"; format=flowed"),
            *text,
            b"\r\n--" + mark + b"\r\n",
            _PART % (b"html", b""),
            *html,
            b"\r\n--" + mark + b"--\r\n",
        ]
    )
