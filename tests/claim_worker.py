"""A separate process claiming deliveries in small batches until none are due.

Used by tests/test_store_queue.py: ``claim_worker.py URL NOW OUT GO_FILE WORKERS``; touches
OUT.ready, waits for GO_FILE so the workers start together, writes the claimed delivery ids to
OUT. After its first batch each worker touches OUT.first and waits until all WORKERS have
claimed a first batch: the claims then overlap for certain, even when the machine is so loaded
that one process could otherwise empty the queue before another was scheduled at all.
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


def wait_for(paths: list[Path]) -> None:
    deadline = time.monotonic() + 60  # a stuck peer fails the test on its counts, not a hang
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.01)


def main(url: str, now_text: str, out: str, go: str, workers: str) -> None:
    table = Timetable.of(load_campaign(ROOT / "campaigns" / "ketamine-therapy"))
    # A long lease: a worker waits (up to 60 s on a loaded machine) for its peer's first
    # claim without renewing, and must not be taken for dead meanwhile.
    queue = SqlDeliveryQueue(open_store(url), lambda slug: table, lease_seconds=600)
    now = datetime.fromisoformat(now_text)
    Path(out + ".ready").touch()
    wait_for([Path(go)])
    peers = [Path(out).with_name(f"claimed-{n}.txt.first") for n in range(int(workers))]
    claimed: list[int] = []
    while batch := queue.claim_due(now, 10):
        if not claimed:
            Path(out + ".first").touch()
            wait_for(peers)
        claimed += [c.delivery_id for c in batch]
        time.sleep(0.005)  # a dispatcher spends time sending between claims
    Path(out).write_text("\n".join(map(str, claimed)))


if __name__ == "__main__":
    main(*sys.argv[1:6])
