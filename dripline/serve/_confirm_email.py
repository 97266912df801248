"""The confirmation email: a small plain-text + HTML message built with the email package.

It is transactional, not marketing: no List-Unsubscribe (the person is not on a list
yet), and nothing but the link and what it does. The visitor's name is used only in
the body, escaped for HTML; it never reaches a header.
"""

from __future__ import annotations

import html
import uuid
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime

from sender.base import OutgoingMessage

from ..campaign import Campaign

__all__ = ["build_confirmation_email"]


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
    """The confirmation message for ``to_address``, From the campaign's sender."""
    domain = campaign.from_address.rpartition("@")[2]
    message_id = f"<{uuid.uuid4().hex}@{domain}>"
    # A non-ASCII local part (the domain is already punycode) needs SMTPUTF8 (RFC 6531).
    message = EmailMessage(policy=SMTP if to_address.isascii() else SMTPUTF8)
    message["From"] = str(Address(campaign.from_name, addr_spec=campaign.from_address))
    message["To"] = to_address
    if campaign.reply_to:
        message["Reply-To"] = campaign.reply_to
    message["Subject"] = _subject(campaign)
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: do not auto-reply to this
    message.set_content(_text_body(campaign, first_name, url), cte="quoted-printable")
    message.add_alternative(
        _html_body(campaign, first_name, url), subtype="html", cte="quoted-printable"
    )
    return OutgoingMessage(
        envelope_from=campaign.from_address,
        recipients=(to_address,),
        data=message.as_bytes(),
        message_id=message_id,
    )
