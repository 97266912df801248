"""The campaigns a server offers sign-up forms for, loaded once at start-up.

A campaign that fails to load is reported (file and line) and left out; the others
are served. Its form answers 404 until the campaign is fixed and the server restarted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..campaign import Campaign, campaign_slugs, load_campaign
from ..errors import DriplineError
from ..timetable import Timetable

__all__ = ["OfferedCampaign", "load_offered_campaigns"]

log = logging.getLogger("dripline.serve")


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
