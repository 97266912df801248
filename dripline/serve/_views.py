"""What people see: the HTML pages (Jinja, autoescaped) and the confirmation email.

Pages reached through a token never leak it: ``Referrer-Policy: no-referrer`` keeps
it out of other sites' logs, ``Cache-Control: no-store`` out of shared caches. The
only script is the time-zone line, allowed by its hash in the Content-Security-Policy.

The confirmation email is transactional, not marketing: no List-Unsubscribe (the
person is not on a list yet), and nothing but the link and what it does. The
visitor's name is used only in the body, escaped for HTML; it never reaches a header.
It is written with the same MIME writer as campaign emails (:mod:`dripline.mime`):
quoted-printable lines of at most 76 characters, encoded words of at most 75, the
text part ``format=flowed``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from sender.base import OutgoingMessage

from .._context import clean_text
from .._flowed import flow_text
from ..campaign import Campaign
from ..mime import (
    encode_address,
    encode_header,
    multipart_body,
    multipart_head,
    qp_encode,
    raw_header,
)

__all__ = [
    "TIMEZONE_SCRIPT",
    "build_confirmation_email",
    "invalid_link_page",
    "message_page",
    "page",
]

# The browser knows the visitor's zone; the form sends it so emails arrive at local 9:00.
TIMEZONE_SCRIPT = (
    "try{document.getElementById('timezone').value="
    "Intl.DateTimeFormat().resolvedOptions().timeZone||'';}catch(e){}"
)
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(TIMEZONE_SCRIPT.encode()).digest()).decode()

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{_SCRIPT_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def page(
    template: str,
    status: int = 200,
    *,
    extra_headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    body = _ENV.get_template(template).render(timezone_script=TIMEZONE_SCRIPT, **context)
    return HTMLResponse(body, status_code=status, headers={**_HEADERS, **(extra_headers or {})})


def invalid_link_page() -> HTMLResponse:
    """One page for every bad link token (unsubscribe, click, open: forged, altered,
    unknown, another campaign's), so nothing is learned from which check failed."""
    return message_page(
        "This link does not work",
        "It may have been cut short or changed. To stop our emails, use the unsubscribe "
        "link at the bottom of any of them, or reply to one and ask us.",
        status=404,
    )


def message_page(
    title: str,
    *paragraphs: str,
    status: int = 200,
    lang: str = "en",
    extra_headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page that only says something (sent, done, not found, too many requests)."""
    return page(
        "message.html",
        status,
        extra_headers=extra_headers,
        title=title,
        paragraphs=paragraphs,
        lang=lang,
    )


def _subject(campaign: Campaign) -> str:
    return f"Confirm your subscription: {campaign.name}"


def _text_body(campaign: Campaign, first_name: str, url: str) -> str:
    greeting = f"Hi {first_name}," if first_name else "Hi,"
    return (
        f"{greeting}\n\n"
        f'Someone (we hope you) asked to receive "{campaign.name}" from {campaign.from_name}.\n'
        f"To confirm, open this link and press the button (it works for 7 days):\n\n"
        f"{url}\n\n"
        f"If this was not you, ignore this email: nothing will be sent.\n\n"
        f"{campaign.postal_address}\n"
    )


def _html_body(campaign: Campaign, first_name: str, url: str) -> str:
    e = html.escape
    greeting = f"Hi {e(first_name)}," if first_name else "Hi,"
    return (
        f'<!doctype html><html lang="{e(campaign.lang)}"><head><meta charset="utf-8">'
        f"<title>{e(_subject(campaign))}</title></head>"
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;'
        'color:#1a1a1a;max-width:560px;margin:0 auto;padding:24px">'
        f"<p>{greeting}</p>"
        f"<p>Someone (we hope you) asked to receive <strong>{e(campaign.name)}</strong> "
        f"from {e(campaign.from_name)}.</p>"
        f'<p><a href="{e(url)}" style="display:inline-block;background:#1f5f8b;color:#ffffff;'
        'padding:12px 20px;border-radius:4px;text-decoration:none">Confirm my subscription</a></p>'
        f'<p style="font-size:14px;color:#555">Or paste this link into your browser (it works '
        f'for 7 days):<br><a href="{e(url)}" style="color:#1f5f8b">{e(url)}</a></p>'
        "<p>If this was not you, ignore this email: nothing will be sent.</p>"
        f'<p style="font-size:12px;color:#777">{e(campaign.postal_address)}</p>'
        "</body></html>"
    )


def build_confirmation_email(
    campaign: Campaign, to_address: str, first_name: str, url: str, *, now: datetime | None = None
) -> OutgoingMessage:
    """The confirmation message for ``to_address``, From the campaign's sender.

    Raises:
        RenderError: ``to_address`` cannot be carried in a header.
    """
    domain = campaign.from_address.rpartition("@")[2]
    message_id = f"<{uuid.uuid4().hex}@{domain}>"
    boundary = f"==dripline-{uuid.uuid4().hex}=="
    first_name = clean_text(first_name)
    head = (
        encode_address("From", campaign.from_name, campaign.from_address)
        + encode_address("To", "", to_address)
        + (encode_address("Reply-To", "", campaign.reply_to) if campaign.reply_to else b"")
        + encode_header("Subject", _subject(campaign))
        + f"Date: {format_datetime((now or datetime.now(UTC)).astimezone(UTC))}\r\n".encode()
        + raw_header("Message-ID", message_id)
        + b"Auto-Submitted: auto-generated\r\n"  # RFC 3834: do not auto-reply to this
        + multipart_head(boundary)
    )
    body = multipart_body(
        boundary,
        [qp_encode(flow_text(_text_body(campaign, first_name, url)))],
        [qp_encode(_html_body(campaign, first_name, url))],
    )
    return OutgoingMessage(
        envelope_from=campaign.from_address,
        recipients=(to_address,),
        data=head + body,
        message_id=message_id,
    )
