"""The claimed deliveries of one dispatch pass as one stream, the next claim read ahead.

A pass used to claim a batch, send it, wait for its last chunk, record it and only
then claim again: the SMTP session stood idle during every claim (a few tens of
milliseconds for 500 rows on PostgreSQL, most of it the commit's WAL flush). Here
the dispatcher takes chunks from a stream instead. The next claim is made while the
current rows are still being sent: on the dispatcher's thread as soon as a chunk
can no longer be filled from what is pending (SQLite, whose writers take turns
anyway), or, with ``ahead``, on a helper thread as soon as no more than a batch is
left (PostgreSQL, where the claim is a round trip on its own connection, and may wait
for another worker's claim to end first).

Claiming early weakens nothing: claimed rows are this worker's under its lease and
go back to ``scheduled`` if it dies, and a claim never takes a step whose earlier
step is still claimed or being sent (``hold_back_out_of_order``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from .store import ClaimedDelivery

__all__ = ["ClaimStream"]


class ClaimStream:
    """Chunks of claimed deliveries until a claim comes back empty.

    ``claim()`` claims the next batch (one transaction); ``on_batch(batch)`` is called
    on the caller's thread for each non-empty batch as it is taken in. ``ahead``: make
    the next claim on a helper thread while ``batch_size`` or fewer are left. Not
    thread-safe: one dispatcher thread uses it.
    """

    def __init__(
        self,
        claim: Callable[[], list[ClaimedDelivery]],
        on_batch: Callable[[list[ClaimedDelivery]], None],
        *,
        batch_size: int,
        ahead: bool,
    ) -> None:
        self._claim = claim
        self._on_batch = on_batch
        self._low = max(1, batch_size)
        self._ahead = ahead
        self._pending: deque[ClaimedDelivery] = deque()
        self._next: Future[list[ClaimedDelivery]] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self.exhausted = False  # a claim came back empty: nothing more is due this pass
        # A claim read ahead failed: if it committed before the error (a connection lost
        # on the way back), rows may be claimed that nobody here knows of.
        self.lost_claim = False

    def take(self, size: int) -> list[ClaimedDelivery]:
        """Up to ``size`` deliveries (fewer at the end, none when nothing is left).

        Claims only when nothing is pending, so a chunk never mixes two claims unless
        they are read ahead (then it is filled up to ``size``). Raises what the claim
        raises (StoreError).
        """
        while not self.exhausted and (
            not self._pending or (self._next is not None and len(self._pending) < size)
        ):
            self._receive(self._claimed())
        chunk = [self._pending.popleft() for _ in range(min(size, len(self._pending)))]
        if (
            self._ahead
            and not self.exhausted
            and self._next is None
            and len(self._pending) <= self._low
        ):
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="dripline-claim")
            self._next = self._thread.submit(self._claim)
        return chunk

    def _claimed(self) -> list[ClaimedDelivery]:
        if self._next is not None:
            future, self._next = self._next, None
            return future.result()
        return self._claim()

    def _receive(self, batch: list[ClaimedDelivery]) -> None:
        if not batch:
            self.exhausted = True
            return
        self._pending.extend(batch)
        self._on_batch(batch)

    def rest(self) -> list[ClaimedDelivery]:
        """Everything claimed and not taken (a claim still running is waited for), emptied.

        A claim that failed on the helper thread is not raised again here, where the
        pass is ending anyway; it sets :attr:`lost_claim` (the caller hands back
        everything it holds before its next pass).
        """
        if self._next is not None:
            future, self._next = self._next, None
            try:
                batch = future.result()
            except Exception:  # reported by the claim itself; the pass is ending anyway
                self.lost_claim = True
                batch = []
            if batch:
                self._pending.extend(batch)
                self._on_batch(batch)
        rest = list(self._pending)
        self._pending.clear()
        return rest

    def close(self) -> None:
        """Stop the helper thread (after :meth:`rest`)."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
