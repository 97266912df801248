"""One tick of the real dispatcher for the serve tests, reporting what it claimed.

Uses :class:`dripline.dispatch.Dispatcher` exactly as ``dripline run --once`` does
(unsubscribe links from :func:`dripline.runtime.unsubscribe_link_maker`), over the
given engine and the campaigns the test loaded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from dripline.campaign import Campaign
from dripline.dispatch import CampaignLibrary, Dispatcher
from dripline.runtime import sender_for, unsubscribe_link_maker
from dripline.settings import Settings
from dripline.store import ClaimedDelivery, SqlDeliveryQueue
from dripline.timetable import Timetable


class _RecordingQueue(SqlDeliveryQueue):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.claimed: list[ClaimedDelivery] = []

    def claim_due(self, now: datetime, limit: int) -> list[ClaimedDelivery]:
        batch = super().claim_due(now, limit)
        self.claimed += batch
        return batch


def dispatch_pass(
    engine: Engine, settings: Settings, campaigns: dict[str, Campaign], now: datetime
) -> list[ClaimedDelivery]:
    """Send every delivery due at ``now`` through the configured sender; returns the claims."""
    queue = _RecordingQueue(engine, lambda slug: Timetable.of(campaigns[slug]))
    library = CampaignLibrary(settings.campaigns_dir, settings.templates_dir)
    try:
        with sender_for(settings) as sender:
            report = Dispatcher(
                queue, sender, library, unsubscribe_link_maker(settings)
            ).dispatch_due(now)
    finally:
        queue.close()
    assert report.sent == len(queue.claimed), report.summary()
    return queue.claimed
