"""The claims of one pass as a stream: chunks, claims until one comes back empty, read-ahead."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from dripline._claim_stream import ClaimStream
from dripline.store import ClaimedDelivery
from dripline.store._engine import StoreError


def delivery(n: int) -> ClaimedDelivery:
    return ClaimedDelivery(n, n, "c", 1, datetime(2026, 3, 5, tzinfo=UTC), 1, "", "", "", None, {})


class Queue:
    """Hands out batches of ids in order, as claim_due would, and records on which thread."""

    def __init__(self, *sizes: int, fail_at: int | None = None) -> None:
        self.batches = [[delivery(n) for n in range(s)] for s in sizes]
        self.threads: list[str] = []
        self.fail_at = fail_at
        self.started = threading.Event()

    def claim(self) -> list[ClaimedDelivery]:
        self.threads.append(threading.current_thread().name)
        if self.fail_at is not None and len(self.threads) == self.fail_at:
            raise StoreError("database error: the server went away")
        return self.batches.pop(0) if self.batches else []


def test_chunks_come_from_one_claim_at_a_time_until_a_claim_is_empty() -> None:
    queue, seen = Queue(5, 3), []
    stream = ClaimStream(queue.claim, seen.append, batch_size=5, ahead=False)
    chunks = [len(stream.take(2)) for _ in range(6)]
    # Without read-ahead a chunk never mixes two claims: the 5 go as 2, 2, 1.
    assert chunks == [2, 2, 1, 2, 1, 0]
    assert [len(b) for b in seen] == [5, 3]
    assert stream.exhausted and stream.take(2) == []
    assert len(queue.threads) == 3  # the empty claim ends it: no further claim
    assert all(t == threading.current_thread().name for t in queue.threads)


def test_read_ahead_claims_on_a_helper_thread_and_fills_chunks() -> None:
    queue, seen = Queue(4, 4, 1), []
    stream = ClaimStream(queue.claim, seen.append, batch_size=4, ahead=True)
    taken = []
    while chunk := stream.take(3):
        taken.append([d.delivery_id for d in chunk])
    stream.close()
    assert taken == [[0, 1, 2], [3, 0, 1], [2, 3, 0]]
    assert queue.threads[0] == threading.current_thread().name
    assert all(t.startswith("dripline-claim") for t in queue.threads[1:])
    assert [len(b) for b in seen] == [4, 4, 1]


def test_rest_hands_back_what_was_claimed_and_not_taken_including_a_claim_read_ahead() -> None:
    queue, seen = Queue(4, 4), []
    stream = ClaimStream(queue.claim, seen.append, batch_size=4, ahead=True)
    assert len(stream.take(1)) == 1  # the second claim now runs on the helper thread
    rest = stream.rest()
    stream.close()
    assert len(rest) == 3 + 4  # nothing claimed is lost when a pass stops early
    assert sum(len(b) for b in seen) == 8 and stream.rest() == []


@pytest.mark.parametrize("ahead", [False, True])
def test_a_failed_claim_is_raised_or_marks_the_pass_for_a_hand_back(ahead: bool) -> None:
    queue = Queue(2, 2, fail_at=2)
    stream = ClaimStream(queue.claim, lambda batch: None, batch_size=2, ahead=ahead)
    assert len(stream.take(2)) == 2
    if ahead:  # the failed read-ahead is not raised at the end of a pass, but remembered
        assert stream.rest() == [] and stream.lost_claim
    else:
        with pytest.raises(StoreError):
            stream.take(2)
    stream.close()
