"""When to try a transiently failed delivery again, and when to give up.

The dispatcher calls :func:`next_attempt_at` after every
:class:`~sender.base.TransientSendError` that is not ambiguous::

    when = next_attempt_at(first_attempt_at=row.first_attempt_at, attempts=row.attempts,
                           now=now)
    if when is None:
        ...  # give up: mark the delivery failed
    else:
        ...  # back to scheduled, due at `when`

The policy (issue 4): the first retry comes 5 minutes after the failure, each
later one waits twice as long as the one before, capped at 1 hour; a random
jitter of up to 10% is *added* (never subtracted, so "5 minutes" is a floor) so
that messages deferred together by a busy relay do not all come back in the
same second. No attempt is scheduled later than 3 days after the first one: past
that, the delivery fails for good. Every number is a field of
:class:`RetryPolicy`.

The function is pure apart from the random jitter, whose source can be passed
in (``rng``) so tests and ``--now`` runs are reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["DEFAULT_RETRY_POLICY", "RetryPolicy", "backoff_delay", "next_attempt_at"]


class UniformSource(Protocol):
    """Anything with ``random.Random.uniform``'s signature."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with added jitter and a deadline counted from the first attempt."""

    first_delay: timedelta = timedelta(minutes=5)
    max_delay: timedelta = timedelta(hours=1)  # the cap applies before the jitter
    jitter: float = 0.1  # up to this fraction of the delay is added at random
    give_up_after: timedelta = timedelta(days=3)

    def __post_init__(self) -> None:
        if self.first_delay <= timedelta(0) or self.max_delay < self.first_delay:
            raise ValueError("need 0 < first_delay <= max_delay")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        if self.give_up_after < timedelta(0):
            raise ValueError("give_up_after cannot be negative")


DEFAULT_RETRY_POLICY = RetryPolicy()
_RANDOM = random.Random()


def backoff_delay(
    attempts: int,
    *,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    rng: UniformSource = _RANDOM,
) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt (1 for the first failure).

    ``first_delay * 2 ** (attempts - 1)``, at most ``max_delay``, then times a
    random factor in ``[1, 1 + jitter]``.
    """
    if attempts < 1:
        raise ValueError("attempts counts the attempts made so far: at least 1")
    # Past 2**20 the cap has long been reached; stopping there avoids a huge multiplication.
    nominal = min(policy.first_delay * (2 ** min(attempts - 1, 20)), policy.max_delay)
    return nominal * rng.uniform(1.0, 1.0 + policy.jitter)


def next_attempt_at(
    *,
    first_attempt_at: datetime,
    attempts: int,
    now: datetime,
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    rng: UniformSource = _RANDOM,
) -> datetime | None:
    """When to try again after a transient failure at ``now``; ``None`` means give up.

    ``attempts`` is how many attempts have been made, the one that just failed
    included. Gives up when the next attempt would fall after
    ``first_attempt_at + policy.give_up_after``. Pass datetimes that are all
    timezone-aware (or all naive); they are only added and compared.
    """
    when = now + backoff_delay(attempts, policy=policy, rng=rng)
    if when > first_attempt_at + policy.give_up_after:
        return None
    return when
