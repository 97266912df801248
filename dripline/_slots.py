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
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jinja2 import FileSystemLoader, TemplateError
from markupsafe import Markup

from ._budget import BudgetExceeded
from ._context import clean_fields
from ._flowed import flow_line
from ._inline import URL_ATTRIBUTES, inline_css
from ._slot_values import ASK_JINJA, Getter, plain_getter
from .errors import RenderError
from .htmltext import html_to_text
from .mime import multipart_body, qp_encode, soft_break
from .templating import SLOT_PATTERN, SlotLoader, SlotTable, make_environments, rewrite_slots

if TYPE_CHECKING:
    from .render import CompiledStep, Recipient


__all__ = ["SlottedStep"]

# Where a marker sits in the inlined HTML decides how its value must be written.
TEXT, ATTRIBUTE, URL, RAW = "text", "attribute", "url", "raw"
_ATTRIBUTE_NAME = re.compile(r"([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*[\"']?[^\"'>]*$")
# Values libxml2 writes unchanged in an attribute, and in a URL attribute. No "!" in
# an attribute: the full path removes "!important" there (see _inline).
_PLAIN_ATTRIBUTE = re.compile(r"[A-Za-z0-9 ._:/@+,;=?#%~*()$-]*")
_PLAIN_URL = re.compile(r"[A-Za-z0-9._:/@+,;=?#%!~*()$-]*")
_PLAIN_RAW = re.compile(r"[A-Za-z0-9 ._:/@+,;=?#%!~*()$]*")

Piece = bytes | tuple[int, str]  # static bytes, or (slot number, context)
# The text part: static encoded lines, or (one line's parts: text and slot numbers, its end).
TextPiece = bytes | tuple[list[str | int], str]


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
        if match and match.group(1).lower() in URL_ATTRIBUTES:
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


def _split(rendered: str, contexts: Callable[[int], str]) -> list[Piece]:
    pieces: list[Piece] = []
    position = 0
    for match in SLOT_PATTERN.finditer(rendered):
        pieces.append(soft_break(qp_encode(rendered[position : match.start()], soft_end=True)))
        pieces.append((int(match.group(1)), contexts(match.start())))
        position = match.end()
    pieces.append(qp_encode(rendered[position:]))
    return [p for p in pieces if p != b""]


def _parts(line: str) -> list[str | int]:
    parts: list[str | int] = []
    position = 0
    for match in SLOT_PATTERN.finditer(line):
        parts += [line[position : match.start()], int(match.group(1))]
        position = match.end()
    parts.append(line[position:])
    return parts


def _split_text(text: str) -> list[TextPiece]:
    """The text part by lines: runs of static lines flowed and encoded once."""
    pieces: list[TextPiece] = []
    run: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        end = "\n" if index < len(lines) - 1 else ""
        if SLOT_PATTERN.search(line) is None:
            run.append(flow_line(line) + end)
            continue
        if run:
            pieces.append(qp_encode("".join(run)))
            run = []
        pieces.append((_parts(line), end))
    if run:
        pieces.append(qp_encode("".join(run)))
    return [p for p in pieces if p != b""]


@dataclass
class SlottedStep:
    compiled: CompiledStep
    expressions: list[Callable[..., Any]]
    subject_parts: list[str | int]
    html_pieces: list[Piece]
    text_pieces: list[TextPiece]
    # Each expression in plain Python where that is exactly Jinja's answer (None: Jinja).
    getters: list[Getter | None]

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
        return cls(
            getters=[plain_getter(plain.text, e) for e in slots.expressions],
            compiled=compiled,
            expressions=expressions,
            subject_parts=_parts(subject),
            html_pieces=_split(html, lambda at: _context_at(html, at)),
            text_pieces=_split_text(text),
        )

    def _value(self, index: int, context: dict[str, Any]) -> Any:
        getter = self.getters[index]
        if getter is not None:
            value = getter(context)
            if value is not ASK_JINJA:
                return value
        return self.expressions[index](**context)

    def _values(self, context: dict[str, Any]) -> list[Any]:
        return [self._value(index, context) for index in range(len(self.expressions))]

    def render(self, recipient: Recipient, when: datetime, message_id: str) -> bytes | None:
        """The message bytes, or None when this recipient needs the full path."""
        fields = dict(recipient.fields)
        static = self.compiled.static_context
        base = {**static, **self.compiled.tracking_context(recipient)}
        # Same order of checks as the full path: subject (raw values), body, then To.
        try:
            raw_context = {**base, "subscriber": {**fields, "email": recipient.email}}
            subject = "".join(
                p if isinstance(p, str) else str(self._value(p, raw_context))
                for p in self.subject_parts
            )
            self.compiled.check_subject(subject)
            clean = self._values(
                {**base, "subscriber": {**clean_fields(fields), "email": recipient.email}}
            )
            if any(isinstance(v, Markup) for v in clean):
                return None
            clean_text = [str(v) for v in clean]
        except (RenderError, BudgetExceeded):
            raise
        except Exception:  # Jinja's, or what a filter raised on subscriber data: the full
            return None  # path raises it again, naming the template line that fails
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
            html.append(soft_break(qp_encode(placed, soft_end=True)))
        text = [
            piece
            if isinstance(piece, bytes)
            else qp_encode(
                flow_line("".join(p if isinstance(p, str) else clean_text[p] for p in piece[0]))
                + piece[1]
            )
            for piece in self.text_pieces
        ]
        head = self.compiled.head(recipient, subject, when, message_id)
        return head + multipart_body(self.compiled.boundary, text, html)
