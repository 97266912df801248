"""The fast path: a step rendered once with slot markers, then filled in per recipient.

Every per-subscriber ``{{ expression }}`` becomes a marker (``dlslot3x``) before
the one expensive render (Jinja, premailer, HTML-to-text). The results are cut
at the markers into static pieces, quoted-printable encoded once; per recipient
only the expressions are evaluated, each value escaped for the place it lands,
encoded, and the pieces joined. Where a value cannot be placed exactly as the
full path would place it, :meth:`SlottedStep.render` returns ``None`` and that
message takes the full path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from jinja2 import FileSystemLoader, TemplateError
from markupsafe import Markup

from ._context import clean_fields, display_name
from ._inline import inline_css
from .errors import RenderError
from .htmltext import html_to_text
from .mime import check_header_value, encode_address, encode_header, qp_piece, soft_break
from .templating import SLOT_PATTERN, SlotLoader, SlotTable, make_environments, rewrite_slots

if TYPE_CHECKING:
    from .render import CompiledStep, Recipient


__all__ = ["SlottedStep"]

# Where a marker sits in the inlined HTML decides how its value must be written.
TEXT, ATTRIBUTE, URL, RAW = "text", "attribute", "url", "raw"
_URL_ATTRIBUTES = frozenset({"href", "src", "action", "background", "cite", "longdesc"})
_ATTRIBUTE_NAME = re.compile(r"([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*[\"']?[^\"'>]*$")
# Values libxml2 writes unchanged in an attribute, and in a URL attribute.
_PLAIN_ATTRIBUTE = re.compile(r"[A-Za-z0-9 ._:/@+,;=?#%!~*()$-]*")
_PLAIN_URL = re.compile(r"[A-Za-z0-9._:/@+,;=?#%!~*()$-]*")
_PLAIN_RAW = re.compile(r"[A-Za-z0-9 ._:/@+,;=?#%!~*()$]*")

Piece = bytes | tuple[int, str]  # static bytes, or (slot number, context)


def _context_at(html: str, position: int) -> str:
    """The kind of place a marker at ``position`` of serialised HTML sits in."""
    if html.rfind("<!--", 0, position) > html.rfind("-->", 0, position):
        return RAW
    for tag in ("style", "script"):
        if html.rfind(f"<{tag}", 0, position) > html.rfind(f"</{tag}", 0, position):
            return RAW
    opened = html.rfind("<", 0, position)
    if opened > html.rfind(">", 0, position):
        match = _ATTRIBUTE_NAME.search(html, opened, position)
        if match and match.group(1).lower() in _URL_ATTRIBUTES:
            return URL
        return ATTRIBUTE
    return TEXT


def _escape_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _place(value: str, context: str) -> str | None:
    """``value`` as the full path's serialiser would write it there, or None if unsure."""
    if context == TEXT:
        return _escape_text(value)
    pattern = {ATTRIBUTE: _PLAIN_ATTRIBUTE, URL: _PLAIN_URL, RAW: _PLAIN_RAW}[context]
    return value if pattern.fullmatch(value) else None


def _split(rendered: str, contexts: Callable[[int], str] | None) -> list[Piece]:
    pieces: list[Piece] = []
    position = 0
    for match in SLOT_PATTERN.finditer(rendered):
        pieces.append(soft_break(qp_piece(rendered[position : match.start()])))
        context = contexts(match.start()) if contexts else TEXT
        pieces.append((int(match.group(1)), context))
        position = match.end()
    pieces.append(qp_piece(rendered[position:]))
    return [p for p in pieces if p != b""]


@dataclass
class SlottedStep:
    compiled: CompiledStep
    expressions: list[Callable[..., Any]]
    subject_parts: list[str | int]
    html_pieces: list[Piece]
    text_pieces: list[Piece]
    static_from: bytes
    static_reply_to: bytes
    static_tail: bytes
    boundary: str

    @classmethod
    def build(cls, compiled: CompiledStep) -> SlottedStep | None:
        renderer, step, campaign = compiled.renderer, compiled.step, compiled.campaign
        slots = SlotTable()
        plain = make_environments(None)
        envs = make_environments(None)
        for env, original in ((envs.html, plain.html), (envs.text, plain.text)):
            env.loader = SlotLoader(
                FileSystemLoader(str(renderer.templates_dir)),
                lambda source, name, env=original: rewrite_slots(source, env, slots, name),
            )
        try:
            subject_t = envs.text.from_string(
                rewrite_slots(step.subject, plain.text, slots, "subject")
            )
            preheader_t = envs.text.from_string(
                rewrite_slots(step.preheader, plain.text, slots, "preheader")
            )
            body_t = envs.html.from_string(
                rewrite_slots(compiled.body_source, plain.html, slots, "body")
            )
            layout_html = envs.html.get_template(f"{campaign.layout}.html")
            layout_text = envs.text.get_template(f"{campaign.layout}.txt")
            if slots.dynamic:
                return None
            context = compiled.static_context
            subject = subject_t.render(**context)
            preheader = preheader_t.render(**context)
            body_html = body_t.render(**context)
            document = layout_html.render(
                **context, subject=subject, preheader=preheader, body=Markup(body_html)
            )
            text = layout_text.render(
                **context, subject=subject, preheader=preheader, body_text=html_to_text(body_html)
            )
        except TemplateError:
            return None  # the full path reports the error with its context
        html = inline_css(document)
        expressions = [
            plain.text.compile_expression(e, undefined_to_none=False) for e in slots.expressions
        ]
        subject_parts: list[str | int] = []
        position = 0
        for match in SLOT_PATTERN.finditer(subject):
            subject_parts += [subject[position : match.start()], int(match.group(1))]
            position = match.end()
        subject_parts.append(subject[position:])

        boundary = f"==dripline-{uuid4().hex}=="
        head = encode_address("From", campaign.from_name, campaign.from_address)
        reply_to = encode_address("Reply-To", "", campaign.reply_to) if campaign.reply_to else b""
        list_id = f"{campaign.name} <{campaign.slug}.{renderer.list_domain}>"
        tail = (
            encode_header("List-Id", list_id)
            + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            + b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode()
        )
        return cls(
            compiled=compiled,
            expressions=expressions,
            subject_parts=subject_parts,
            html_pieces=_split(html, lambda at: _context_at(html, at)),
            text_pieces=_split(text, None),
            static_from=head,
            static_reply_to=reply_to,
            static_tail=tail,
            boundary=boundary,
        )

    def _values(self, context: dict[str, Any]) -> list[Any]:
        return [expression(**context) for expression in self.expressions]

    def render(self, recipient: Recipient, when: datetime, message_id: str) -> bytes | None:
        """The message bytes, or None when this recipient needs the full path."""
        fields = dict(recipient.fields)
        static = self.compiled.static_context
        base = {**static, "unsubscribe_url": recipient.unsubscribe_url}
        # Same order of checks as the full path: subject (raw values), body, then To.
        try:
            raw_context = {**base, "subscriber": {**fields, "email": recipient.email}}
            subject = "".join(
                p if isinstance(p, str) else str(self.expressions[p](**raw_context))
                for p in self.subject_parts
            )
            check_header_value("Subject", subject)
            clean = self._values(
                {**base, "subscriber": {**clean_fields(fields), "email": recipient.email}}
            )
            if any(isinstance(v, Markup) for v in clean):
                return None
            clean_text = [str(v) for v in clean]
        except RenderError:
            raise
        except Exception as err:  # Jinja's, or what a filter raised on subscriber data
            raise self.compiled._fail(err) from err
        if any(v == "" for v in clean_text):
            return None  # an empty value can change how text around it is spaced

        html: list[bytes] = []
        for piece in self.html_pieces:
            if isinstance(piece, bytes):
                html.append(piece)
                continue
            placed = _place(clean_text[piece[0]], piece[1])
            if placed is None:
                return None
            html.append(soft_break(qp_piece(placed)))
        text = [
            piece if isinstance(piece, bytes) else soft_break(qp_piece(clean_text[piece[0]]))
            for piece in self.text_pieces
        ]
        name = display_name(recipient)
        unsubscribe = self.compiled.list_unsubscribe(recipient.unsubscribe_url)
        head = (
            self.static_from
            + encode_address("To", name, recipient.email)
            + self.static_reply_to
            + encode_header("Subject", subject)
            + f"Date: {format_datetime(when.astimezone(UTC))}\r\n".encode()
            + encode_header("Message-ID", message_id)
            + encode_header("List-Unsubscribe", unsubscribe)
            + self.static_tail
        )
        boundary = self.boundary.encode()
        part = b'Content-Type: text/%s; charset="utf-8"\r\n' + (
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        return b"".join(
            [
                head,
                b"--" + boundary + b"\r\n",
                part % b"plain",
                *text,
                b"\r\n--" + boundary + b"\r\n",
                part % b"html",
                *html,
                b"\r\n--" + boundary + b"--\r\n",
            ]
        )
