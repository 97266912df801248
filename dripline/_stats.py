"""The statistics of A/B subject tests: a two-proportion z-test and Wilson score intervals.

Both use the standard library's :class:`statistics.NormalDist` for the normal
distribution's quantiles and tails; nothing here approximates them by hand.
"""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = [
    "CLICKS_PER_VARIANT",
    "CONFIDENCE",
    "clicks_needed",
    "two_proportion_test",
    "wilson_interval",
]

CONFIDENCE = 0.95  # the level of the test (alpha 0.05) and of the intervals
_STANDARD = NormalDist()


# The one look also waits for this many people's clicks per variant, in total over the
# variants: with fewer the normal approximation fails (0 vs 0 gives p = 1, a "no difference"
# that is only a broken or late click path). Deferring on the click total, which is blind to
# which variant has them, does not choose the moment by the difference, so 5% stays 5%.
CLICKS_PER_VARIANT = 5


def clicks_needed(variants: int) -> int:
    """People's clicks (in total over the ``variants``) before a test is judged."""
    return CLICKS_PER_VARIANT * variants


def two_proportion_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> tuple[float, float]:
    """(z, two-sided p-value) for "the rates of A and B differ", pooled standard error.

    The two-proportion z-test (e.g. NIST/SEMATECH e-Handbook of Statistical Methods,
    7.3.3; Agresti, *Categorical Data Analysis*, 3.1): with the pooled rate
    ``p = (x_a + x_b) / (n_a + n_b)``, ``z = (x_a/n_a - x_b/n_b) / sqrt(p (1 - p)
    (1/n_a + 1/n_b))`` and ``p-value = 2 (1 - Phi(|z|))``. Positive ``z``: A's rate is
    higher. When every trial or none succeeded there is no variation to test: (0.0, 1.0).
    Raises ValueError for a count of trials below 1 or successes outside 0..trials.
    """
    for successes, trials in ((successes_a, trials_a), (successes_b, trials_b)):
        if trials < 1 or not 0 <= successes <= trials:
            raise ValueError(f"{successes} successes in {trials} trials is not a proportion")
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return 0.0, 1.0
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return z, 2 * (1 - _STANDARD.cdf(abs(z)))


def wilson_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval of a rate (Wilson 1927; Agresti & Coull 1998), as (low, high).

    Unlike the normal ("Wald") interval it stays within 0..1 and is honest for the small
    rates and counts of email clicks. ``(0.0, 1.0)`` when there are no trials.
    """
    if trials < 1:
        return 0.0, 1.0
    z = _STANDARD.inv_cdf(1 - (1 - confidence) / 2)
    rate = successes / trials
    scale = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / scale
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / scale
    return max(0.0, centre - half), min(1.0, centre + half)
