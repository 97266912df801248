"""A separate process claiming deliveries in small batches until none are due.

Used by tests/test_store_queue.py: ``claim_worker.py URL NOW OUT GO_FILE``; touches OUT.ready, waits
for GO_FILE so the workers start together, writes the claimed delivery ids to OUT.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from dripline.campaign import load_campaign
from dripline.store import SqlDeliveryQueue, open_store
from dripline.timetable import Timetable

ROOT = Path(__file__).resolve().parent.parent


def main(url: str, now_text: str, out: str, go: str) -> None:
    table = Timetable.of(load_campaign(ROOT / "campaigns" / "ketamine-therapy"))
    queue = SqlDeliveryQueue(open_store(url), lambda slug: table)
    now = datetime.fromisoformat(now_text)
    Path(out + ".ready").touch()
    while not Path(go).exists():
        time.sleep(0.01)
    claimed: list[int] = []
    while batch := queue.claim_due(now, 10):
        claimed += [c.delivery_id for c in batch]
        time.sleep(0.005)  # a dispatcher spends time sending between claims
    Path(out).write_text("\n".join(map(str, claimed)))


if __name__ == "__main__":
    main(*sys.argv[1:5])
