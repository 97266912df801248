"""A/B subject tests: which of a step's ``subjects`` a subscriber gets.

The choice is a pure function of the subscriber's public key (random, 128 bits,
never reused; see :func:`dripline.store.new_public_key`) and the step identity, so
every worker, every restart and every retry picks the same variant for the same
person, and with SHA-256 spreading keys evenly the variants get about equal shares.
Choosing per step (not per person) keeps one step's test independent of another's.
The variant that went out is recorded in the ledger (``deliveries.subject_variant``).
"""

from __future__ import annotations

import hashlib

__all__ = ["choose_variant"]


def choose_variant(public_key: str, step_id: str, count: int) -> int:
    """The 0-based index of the variant (of ``count``) for this subscriber and step.

    Deterministic: SHA-256 of ``public_key`` and ``step_id``, reduced modulo ``count``
    (the bias of reducing 64 bits modulo 2 to 4 is below 1e-18). Raises ValueError for
    a ``count`` below 1.
    """
    if count < 1:
        raise ValueError("there must be at least one variant")
    digest = hashlib.sha256(f"{public_key}\x00{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count
