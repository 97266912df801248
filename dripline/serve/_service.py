"""What the pages do, without HTTP: resolve tokens, sign up, confirm, unsubscribe.

Methods block (database, sender) and are called from a worker thread by the routes.
Every token failure comes back as ``None``, whatever the reason, so the pages can
answer them all with the same 404.

Campaigns are loaded once at start-up; one that fails to load is reported (file and
line) and left out, and its form answers 404 until it is fixed and the server restarted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from ..campaign import Campaign, campaign_slugs, load_campaign
from ..errors import DriplineError
from ..links import CONFIRM_MAX_AGE, confirm_url_for
from ..runtime import sender_for
from ..settings import Settings
from ..store import (
    ConfirmedSignup,
    SignupForm,
    confirm_signup,
    enrolled_campaigns,
    pending_signup_campaign,
    request_signup,
    unsubscribe_by_key,
)
from ..timetable import Timetable
from ..tokens import CONFIRM, UNSUBSCRIBE, TokenSigner, VerifiedToken
from ._form import SignupFields
from ._views import build_confirmation_email

__all__ = ["OfferedCampaign", "ResolvedToken", "SignupService", "load_offered_campaigns"]

log = logging.getLogger("dripline.serve")

# The secret the SMTP sender reads its password from (see sender/smtp); never in a URL.


@dataclass(frozen=True)
class OfferedCampaign:
    campaign: Campaign
    timetable: Timetable

    @property
    def slug(self) -> str:
        return self.campaign.slug

    @property
    def consent_text(self) -> str:
        """The sentence a visitor agrees to; stored word for word with their consent."""
        c = self.campaign
        count = len(c.steps)
        emails = "email" if count == 1 else f"{count} emails"
        return (
            f"Yes, send me the {emails} of \u201c{c.name}\u201d from {c.from_name} "
            f"({c.from_address}). I can unsubscribe at any time with the link in every email."
        )


def load_offered_campaigns(campaigns_dir: Path) -> dict[str, OfferedCampaign]:
    offered: dict[str, OfferedCampaign] = {}
    for slug in campaign_slugs(campaigns_dir):
        try:
            campaign = load_campaign(campaigns_dir / slug)
        except DriplineError as err:
            log.warning("campaign %s is not offered: %s", slug, err)
            continue
        offered[slug] = OfferedCampaign(campaign, Timetable.of(campaign))
    return offered


@dataclass(frozen=True)
class ResolvedToken:
    """A genuine token whose key and campaign exist: what a page may act on."""

    key: str
    campaign_slug: str


class SignupService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        campaigns: dict[str, OfferedCampaign],
        *,
        clock: Callable[[], datetime],
        emails_per_hour: int = 3,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.campaigns = campaigns
        self.clock = clock
        self.emails_per_hour = emails_per_hour
        self.signer = TokenSigner(settings.secret_key)

    # -- unsubscribe --------------------------------------------------------------------

    def verify_unsubscribe(self, token: str) -> VerifiedToken | None:
        """The signature check alone: cheap, no database (routes run it before a thread)."""
        return self.signer.verify(token, purpose=UNSUBSCRIBE)

    def resolve_unsubscribe(self, verified: VerifiedToken) -> ResolvedToken | None:
        return self._match(verified, enrolled_campaigns(self.engine, verified.key))

    def unsubscribe(self, verified: VerifiedToken) -> ResolvedToken | None:
        """Unsubscribe the token's subscriber from its campaign (a repeat changes nothing)."""
        resolved = self.resolve_unsubscribe(verified)
        if resolved is not None:
            unsubscribe_by_key(self.engine, resolved.key, resolved.campaign_slug)
        return resolved

    def _match(self, verified: VerifiedToken, slugs: list[str]) -> ResolvedToken | None:
        # Check every candidate (no early exit) so timing does not depend on the position.
        found = [s for s in slugs if self.signer.names_campaign(verified, s)]
        return ResolvedToken(verified.key, found[0]) if len(found) == 1 else None

    # -- confirmation -------------------------------------------------------------------

    def verify_confirm(self, token: str) -> VerifiedToken | None:
        """The signature and age check alone (seven days), without the database."""
        return self.signer.verify(token, purpose=CONFIRM, max_age=CONFIRM_MAX_AGE, now=self.clock())

    def resolve_confirm(self, verified: VerifiedToken) -> ResolvedToken | None:
        slug = pending_signup_campaign(self.engine, verified.key)
        if slug is None or slug not in self.campaigns:
            return None
        return self._match(verified, [slug])

    def confirm(
        self, verified: VerifiedToken, *, ip: str, user_agent: str
    ) -> ConfirmedSignup | None:
        resolved = self.resolve_confirm(verified)
        if resolved is None:
            return None
        offered = self.campaigns[resolved.campaign_slug]
        return confirm_signup(
            self.engine,
            offered.timetable,
            resolved.key,
            ip=ip,
            user_agent=user_agent,
            now=self.clock(),
        )

    # -- sign-up ------------------------------------------------------------------------

    def sign_up(
        self, offered: OfferedCampaign, fields: SignupFields, *, ip: str, user_agent: str
    ) -> str:
        """Record the sign-up and send its confirmation email; returns what happened.

        ``"sent"``, ``"rate-limited"`` or ``"bounced"``; the visitor sees the same page
        for all three. Sending errors propagate (the page says to try again later).
        """
        assert fields.checked_email is not None, "only a checked form is signed up"
        now = self.clock()
        ticket = request_signup(
            self.engine,
            SignupForm(
                campaign=offered.slug,
                email=fields.checked_email,
                first_name=fields.first_name,
                timezone=fields.checked_zone,
                country=fields.checked_country,
                form=f"/subscribe/{offered.slug}",
                consent_text=offered.consent_text,
                ip=ip,
                user_agent=user_agent,
            ),
            now=now,
            emails_per_hour=self.emails_per_hour,
        )
        if ticket.request_key is None:
            log.info("sign-up for %s: no email (%s)", offered.slug, ticket.reason)
            return ticket.reason
        url = confirm_url_for(self.settings, ticket.request_key, offered.slug, now=now)
        message = build_confirmation_email(
            offered.campaign, str(fields.checked_email), fields.first_name, url, now=now
        )
        with sender_for(self.settings) as sender:
            sender.send(message)
        return "sent"
