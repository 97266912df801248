"""A/B subject tests: which of a step's ``subjects`` a subscriber gets, and the winner.

The choice is a pure function of the subscriber's public key (random, 128 bits,
never reused; see :func:`dripline.store.new_public_key`) and the step identity, so
every worker, every restart and every retry picks the same variant for the same
person, and with SHA-256 spreading keys evenly the variants get about equal shares.
Choosing per step (not per person) keeps one step's test independent of another's.
The variant is recorded in the ledger when the delivery goes to ``sending`` (so an
``ambiguous`` row says which subject may have arrived): its number
(``deliveries.subject_variant``) and the key of its text as written
(``deliveries.subject_key``, :func:`subject_key`). Counts follow the text: a reordered
list keeps them, an edited text starts from zero. A delivery re-sent (a retry, ``requeue
--ambiguous``) keeps the variant it was recorded with while that text is still among the
step's subjects, even after a winner: the same person always gets the same subject.

``[experiment] winner_after = N`` in campaign.toml ends the split, after ONE look: at
the first pass where every variant of a step has N messages sent at least
``click_window`` ago (``[experiment] click_window``, default 24 hours) and people's clicks
on them add up to at least 5 per variant (:func:`clicks_needed`), the test is
judged on those messages only and people's clicks on them (unique clicks per message
sent; machine clicks and opens never used), with a two-proportion z-test at 95%
(:func:`dripline._stats.two_proportion_test`, two-sided). With 3 or 4 variants the best
must beat each other one at the Bonferroni-corrected level 0.05 / (variants - 1). The
decision is recorded once in the database, whatever it is: a winner (its text and key),
which every later message of that step carries whatever ``[experiment]`` or
``[tracking]`` say later (judging needs them, a stored decision does not), or "no
significant difference", after which the split simply goes on and the step is never
judged again. Judging once keeps the 5% error rate honest: looking again on every pass
at accumulating counts ("optional stopping") crowns a winner in about 21% of tests
between equal subjects. The dispatcher asks
:class:`ExperimentJudge` once per step per pass (one grouped query), never per message.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ._stats import CLICKS_PER_VARIANT, CONFIDENCE, clicks_needed, two_proportion_test
from .campaign import Campaign, Step, line_of_key
from .findings import Finding
from .store import Decision, StoredWinner, VariantTally, subject_key

__all__ = [
    "CLICKS_PER_VARIANT",
    "ExperimentJudge",
    "WinnerStore",
    "choose_variant",
    "clicks_needed",
    "experiment_findings",
    "judge_tallies",
    "pick_winner",
    "subject_key",
]

log = logging.getLogger("dripline.experiments")


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


# Below this many sends per variant, check warns: the z-test's normal approximation needs
# several clicks per variant (about 5 or more), which small counts at low rates do not give.
WINNER_AFTER_ADVISED = 100
# Below this, check warns: people open mail over hours, so a shorter window judges
# messages most of their readers have not seen yet.
CLICK_WINDOW_ADVISED = timedelta(hours=1)


def judge_tallies(
    tallies: Sequence[VariantTally], variants: int, winner_after: int
) -> Decision | None:
    """The verdict on these counts, or None while a variant has fewer than ``winner_after``
    sends or the variants have fewer than :func:`clicks_needed` people's clicks in all.

    Judged when each of the ``variants`` (numbered 1..variants) has been sent at least
    ``winner_after`` times and their clicks add up to 5 per variant (37 vs 0 is judged;
    0 vs 0 waits). The variant with the highest click rate wins if a two-sided
    two-proportion z-test against every other variant gives p below
    ``0.05 / (variants - 1)``; the decision carries the weakest of those comparisons
    (smallest z, largest p), and ``variant`` None when there is no significant
    difference (a tie for the highest rate included).
    """
    by_variant = {t.variant: t for t in tallies}
    numbers = range(1, variants + 1)
    if variants < 2 or any(
        v not in by_variant or by_variant[v].sent < winner_after for v in numbers
    ):
        return None
    if sum(by_variant[v].clicks for v in numbers) < clicks_needed(variants):
        return None  # too few clicks for the z-test: not judged yet (a later pass may be)
    ranked = sorted((by_variant[v] for v in numbers), key=lambda t: t.clicks / t.sent, reverse=True)
    best, others = ranked[0], ranked[1:]
    alpha = (1 - CONFIDENCE) / (variants - 1)
    tests = [two_proportion_test(best.clicks, best.sent, o.clicks, o.sent) for o in others]
    z, p_value = min(z for z, _ in tests), max(p for _, p in tests)
    return Decision(best.variant if z > 0 and p_value < alpha else None, z, p_value)


def pick_winner(
    tallies: Sequence[VariantTally], variants: int, winner_after: int
) -> Decision | None:
    """The winning variant of these counts, or None (not yet judged, or no difference):
    :func:`judge_tallies` without its "no significant difference" verdict."""
    decision = judge_tallies(tallies, variants, winner_after)
    return decision if decision is not None and decision.variant is not None else None


class WinnerStore(Protocol):
    """What the judge needs from the store (``SqlDeliveryQueue.judge_experiment``)."""

    def judge_experiment(
        self,
        campaign: str,
        step_id: str,
        subjects: Sequence[str],
        *,
        decide,
        now: datetime,
        sent_before: datetime | None = None,
    ) -> StoredWinner | None: ...


class ExperimentJudge:
    """Which variant a delivery of an A/B step carries: the subscriber's own until the
    step has a winner, then the winner. Asks the store once per step per pass; the store
    judges a step once (its one look), so a "no significant difference" stays final."""

    def __init__(self, store: WinnerStore) -> None:
        self.store = store
        self._now: datetime | None = None
        self._winners: dict[tuple[str, str], int | None] = {}  # this pass: 0-based or None
        self._warned: set[tuple[str, str, str]] = set()

    def new_pass(self, now: datetime) -> None:
        """Forget this pass's answers: the next pass may be the one whose counts are ready."""
        self._now = now
        self._winners.clear()

    def variant(
        self, campaign: Campaign, step: Step, public_key: str, recorded_key: str | None = None
    ) -> int:
        """The 0-based variant of ``step`` for this subscriber: the one recorded for this
        delivery (``recorded_key``, a re-send) while its text is among the subjects, else
        the winner, else the subscriber's own. Raises StoreError."""
        if recorded_key is not None:
            keys = [subject_key(text) for text in step.subjects]
            if recorded_key in keys:
                return keys.index(recorded_key)
        winner = self._winner(campaign, step)
        if winner is not None:
            return winner
        return choose_variant(public_key, step.id, len(step.subjects))

    def judge(self, campaign: Campaign, step: Step) -> None:
        """Judge ``step``'s test now if it is ready, even with none of its messages to send
        this pass (a list imported at once would otherwise never get a verdict). At most
        once per step per pass, like :meth:`variant`. Raises StoreError."""
        self._winner(campaign, step)

    def _winner(self, campaign: Campaign, step: Step) -> int | None:
        after = campaign.winner_after
        if len(step.subjects) < 2:
            return None
        key = (campaign.slug, step.id)
        if key not in self._winners:
            now = self._now or datetime.now(UTC)

            def decide(tallies: Sequence[VariantTally]) -> Decision | None:
                # Judging needs winner_after and people's clicks (check says why when
                # clicks are off); reading a stored decision does not.
                if after is None or not campaign.tracking.clicks:
                    return None
                return judge_tallies(tallies, len(step.subjects), after)

            stored = self.store.judge_experiment(
                campaign.slug,
                step.id,
                step.subjects,
                decide=decide,
                now=now,
                sent_before=now - campaign.click_window,  # their clicks have had time
            )
            self._winners[key] = self._index(campaign, step, stored)
        return self._winners[key]

    def _index(self, campaign: Campaign, step: Step, stored: StoredWinner | None) -> int | None:
        if stored is None or stored.subject is None:
            return None  # not judged yet, or judged with no significant difference
        if stored.subject in step.subjects:  # found by its text: reordering keeps it
            return step.subjects.index(stored.subject)
        warned = (campaign.slug, step.id, stored.subject)
        if warned not in self._warned:
            self._warned.add(warned)
            log.warning(
                "campaign %s, step %s: the A/B winner %r is no longer among the step's "
                "subjects; the split goes on (the test is not judged again)",
                campaign.slug,
                step.id,
                stored.subject,
            )
        return None


def experiment_findings(campaign: Campaign) -> list[Finding]:
    """``dripline check`` on ``[experiment]``: winner_after needs click tracking (an
    error: no winner could ever be chosen) and a step with ``subjects`` (a warning), and
    below :data:`WINNER_AFTER_ADVISED` sends per variant the z-test is not trustworthy (a
    warning); a click_window without winner_after does nothing, and one under
    :data:`CLICK_WINDOW_ADVISED` judges unread mail (warnings)."""
    path = campaign.toml_path
    if campaign.winner_after is None:
        window_line = line_of_key(path, "click_window")
        if window_line is None:
            return []
        message = "experiment.click_window has no effect without winner_after: no test is judged"
        return [Finding("warning", message, path, window_line, rule="experiment")]
    line = line_of_key(path, "winner_after")
    found: list[Finding] = []
    if not campaign.tracking.clicks:
        found.append(
            Finding(
                "error",
                "experiment.winner_after needs [tracking] clicks = true: the winner is chosen "
                "on people's clicks (opens are never used), so without them none ever is",
                path,
                line,
                rule="experiment",
            )
        )
    if not any(step.subjects for step in campaign.steps):
        found.append(
            Finding(
                "warning",
                "experiment.winner_after has no effect: no step has subjects = [...] to test",
                path,
                line,
                rule="experiment",
            )
        )
    if campaign.winner_after < WINNER_AFTER_ADVISED:
        found.append(
            Finding(
                "warning",
                f"experiment.winner_after = {campaign.winner_after} is too few to judge: the "
                "z-test's normal approximation needs several clicks per variant (about 5 or "
                f"more), so with a few sends a winner may be chance; use "
                f"{WINNER_AFTER_ADVISED} or more",
                path,
                line,
                rule="experiment",
            )
        )
    window_line = line_of_key(path, "click_window")
    if window_line is not None and campaign.click_window < CLICK_WINDOW_ADVISED:
        found.append(
            Finding(
                "warning",
                f"experiment.click_window is only {campaign.click_window}: the one look "
                "would judge messages most people have not opened yet; use 1h or more "
                "(24h is the default)",
                path,
                window_line,
                rule="experiment",
            )
        )
    return found
