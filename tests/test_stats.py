"""The A/B statistics against independent formulas and published values."""

from __future__ import annotations

import math

import pytest

from dripline._stats import two_proportion_test, wilson_interval
from dripline.experiments import pick_winner
from dripline.store import VariantTally


def chi_square(a: int, n_a: int, b: int, n_b: int) -> float:
    """Pearson's chi-square of the 2x2 table, without continuity correction."""
    table = [[a, n_a - a], [b, n_b - b]]
    total = n_a + n_b
    rows = [n_a, n_b]
    cols = [a + b, total - a - b]
    return sum(
        (table[i][j] - rows[i] * cols[j] / total) ** 2 / (rows[i] * cols[j] / total)
        for i in range(2)
        for j in range(2)
    )


@pytest.mark.parametrize(
    "counts", [(40, 200, 20, 200), (12, 500, 30, 480), (7, 53, 9, 61), (150, 1000, 100, 1000)]
)
def test_the_z_test_squares_to_pearsons_chi_square_and_its_p_value_is_the_chi_square_tail(counts):
    z, p = two_proportion_test(*counts)
    assert z * z == pytest.approx(chi_square(*counts), rel=1e-9)
    # P(chi-square with 1 degree of freedom > z^2) = erfc(|z| / sqrt 2): the same p.
    assert p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-9)
    swapped = two_proportion_test(counts[2], counts[3], counts[0], counts[1])
    assert swapped[0] == pytest.approx(-z) and swapped[1] == pytest.approx(p)


def test_no_variation_means_no_difference_and_bad_counts_are_refused():
    assert two_proportion_test(0, 100, 0, 100) == (0.0, 1.0)
    assert two_proportion_test(100, 100, 50, 50) == (0.0, 1.0)
    assert two_proportion_test(10, 100, 10, 100)[1] == pytest.approx(1.0)
    for bad in ((1, 0, 1, 10), (11, 10, 1, 10), (-1, 10, 1, 10)):
        with pytest.raises(ValueError):
            two_proportion_test(*bad)


def test_wilson_intervals_match_published_values():
    # Newcombe (1998), Statistics in Medicine 17: 857-872, table I: 0/10 -> 0 to 0.2775,
    # 81/263 -> 0.2553 to 0.3662; and 50/100 -> 0.4038 to 0.5962.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)


def _tallies(a: tuple[int, int], b: tuple[int, int]) -> list[VariantTally]:
    return [VariantTally(1, a[1], a[0]), VariantTally(2, b[1], b[0])]


def test_a_winner_needs_every_variant_sent_winner_after_times():
    clear = ((90, 300), (10, 299))  # a huge difference, but variant 2 is one send short
    assert pick_winner(_tallies(*clear), 2, 300) is None
    assert pick_winner(_tallies(*clear), 2, 299) is not None  # exactly N sent: judged
    assert pick_winner([VariantTally(1, 500, 100)], 2, 100) is None  # variant 2 never sent
    decided = pick_winner(_tallies((10, 400), (60, 400)), 2, 400)
    assert decided is not None and decided.variant == 2 and decided.p_value < 1e-6


def test_p_just_below_005_picks_a_winner_and_just_above_does_not():
    # Variant 2 at 100 clicks of 1,000; find the fewest clicks of variant 1 that differ.
    crossing = next(x for x in range(100, 200) if two_proportion_test(x, 1000, 100, 1000)[1] < 0.05)
    below = two_proportion_test(crossing, 1000, 100, 1000)[1]
    above = two_proportion_test(crossing - 1, 1000, 100, 1000)[1]
    assert 0.04 < below < 0.05 < above < 0.07
    decided = pick_winner(_tallies((crossing, 1000), (100, 1000)), 2, 1000)
    assert decided is not None and decided.variant == 1 and decided.p_value == below
    assert pick_winner(_tallies((crossing - 1, 1000), (100, 1000)), 2, 1000) is None
    assert pick_winner(_tallies((100, 1000), (100, 1000)), 2, 1000) is None  # equal: none


def test_with_three_variants_the_best_must_beat_each_other_at_the_corrected_level():
    # The best beats the worst clearly but the middle one only at p ~ 0.03 > 0.05 / 2.
    three = [VariantTally(1, 1000, 130), VariantTally(2, 1000, 100), VariantTally(3, 1000, 40)]
    assert 0.025 < two_proportion_test(130, 1000, 100, 1000)[1] < 0.05
    assert pick_winner(three, 3, 1000) is None
    clear = [VariantTally(1, 1000, 200), VariantTally(2, 1000, 100), VariantTally(3, 1000, 40)]
    decided = pick_winner(clear, 3, 1000)
    assert decided is not None and decided.variant == 1
