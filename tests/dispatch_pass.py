"""TEST HELPER, not the dispatcher: one minimal dispatch pass for the serve tests.

The real dispatcher (the lead's) is not on this branch. This does the least a tick
does: claim due deliveries with the store's DeliveryQueue, render each with
CompiledStep.render_bytes (the unsubscribe URL from dripline.serve.unsubscribe_url_for),
send through a sender and mark each one sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from dripline.campaign import Campaign
from dripline.render import CampaignRenderer, Recipient
from dripline.serve import unsubscribe_url_for
from dripline.settings import Settings
from dripline.store import ClaimedDelivery, SqlDeliveryQueue
from dripline.timetable import Timetable
from sender.base import OutgoingMessage
from sender.registry import create_sender


def dispatch_pass(
    engine: Engine, settings: Settings, campaigns: dict[str, Campaign], now: datetime
) -> list[ClaimedDelivery]:
    """Send every delivery due at ``now`` through ``settings.sender_url``; returns them."""
    queue = SqlDeliveryQueue(engine, lambda slug: Timetable.of(campaigns[slug]))
    renderers = {slug: CampaignRenderer(c, settings.templates_dir) for slug, c in campaigns.items()}
    claimed = queue.claim_due(now, limit=1000)
    with create_sender(settings.effective_sender_url) as sender:
        for delivery in claimed:
            recipient = Recipient(
                delivery.email,
                {"name": delivery.name, "first_name": delivery.first_name},
                unsubscribe_url_for(settings, delivery.public_key, delivery.campaign),
            )
            step = renderers[delivery.campaign].step(delivery.step)
            message_id, data = step.render_bytes(recipient, now=now)
            from_address = campaigns[delivery.campaign].from_address
            result = sender.send(OutgoingMessage(from_address, (delivery.email,), data, message_id))
            queue.mark_sent(
                delivery.delivery_id, message_id=message_id, sent_at=now, reply=result.reply
            )
    return claimed
