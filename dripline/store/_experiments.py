"""A/B subject tests in the store: each variant's counts, and the winner decided once.

A variant is known by its subject as written in the step file, through its key
(:func:`subject_key`, ``deliveries.subject_key``, recorded when a delivery goes to
``sending``): a reordered ``subjects`` list keeps each text's counts, an edited text
starts from zero. Rows sent before keys were recorded (migration 0015) have no key and
count under the subject the ledger recorded when it is one of today's texts, else under
their variant number in the step's list as it is now (:func:`legacy_number`). A
variant's counts are
its messages sent (status ``sent``) and the people who clicked one of them: deliveries
with at least one click that was not a machine's (issue 16's classing; opens are never
used). The winner is one row per (campaign, step identity) in ``experiment_winners``
(its text and key), or a row with no winner ("no significant difference", ``variant``
NULL), inserted if absent in the transaction that read the counts it rests on: two
workers judging at once make one row, and the second uses the first's
(:func:`judge_experiment`). The one look at a test counts only messages sent before a
cut-off (their clicks have had time to come in); a step with a row is never judged again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, distinct, func, select
from sqlalchemy.dialects import postgresql, sqlite

from ._engine import read_transaction, write_transaction
from ._models import Delivery, Enrollment
from ._results_models import Click, ExperimentWinner
from ._values import from_db_time, to_db_time

__all__ = [
    "Decision",
    "KeyTally",
    "StoredWinner",
    "VariantTally",
    "campaign_variant_tallies",
    "experiment_winners",
    "judge_experiment",
    "legacy_number",
    "subject_key",
    "variant_tallies",
]

_D = Delivery.__table__
_E = Enrollment.__table__
_C = Click.__table__
_W = ExperimentWinner.__table__


def subject_key(subject: str) -> str:
    """The key of an A/B variant: the first 16 hex digits of SHA-256 of its subject as
    written in the step file (UTF-8, before rendering: subjects can be personalised)."""
    return hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True)
class VariantTally:
    """One subject variant of a step: messages sent, and people's unique clicks on them."""

    variant: int  # 1-based, in the step's list (as judged)
    sent: int
    clicks: int
    key: str | None = None  # subject_key of its text (None: counted by number only)
    subject: str | None = None  # its text as written, when known

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"variant": self.variant, "sent": self.sent, "clicks": self.clicks}
        if self.key is not None:  # additive: winners decided before keys have none
            found.update(key=self.key, subject=self.subject)
        return found


@dataclass(frozen=True)
class KeyTally:
    """A step's sent messages of one (subject key, variant number) as recorded, split by
    whether they went out after the step's winner was decided (``after_winner``)."""

    step_id: str
    key: str | None  # None: sent before keys were recorded (migration 0015)
    variant: int  # the number it was sent under
    subject: str | None  # the ledger's subject (rendered) of one of them
    after_winner: bool
    sent: int
    clicks: int


@dataclass(frozen=True)
class Decision:
    """A verdict on the counts: the winning variant (1-based; None for no significant
    difference), z and the two-sided p-value of the weakest comparison."""

    variant: int | None
    z: float
    p_value: float


@dataclass(frozen=True)
class StoredWinner:
    """A judged A/B test as recorded: the winner (or None: no significant difference) and
    the counts it was decided on."""

    campaign: str
    step_id: str
    variant: int | None  # None: judged, no significant difference; the split goes on
    subject: str | None  # the winning variant as the step file had it then
    key: str | None  # subject_key(subject); None with no winner
    decided_at: datetime  # aware UTC
    z: float
    p_value: float
    tallies: tuple[VariantTally, ...]


def variant_tallies(
    conn: Connection,
    campaign: str,
    step_id: str,
    subjects: Sequence[str] | None = None,
    *,
    sent_before: datetime | None = None,
) -> list[VariantTally]:
    """Each variant's sent messages and people's unique clicks.

    With ``subjects`` (the step's variants as written now): only the variants whose key is
    among them, numbered by their place in ``subjects`` (a reordered list keeps each
    text's counts; an edited text starts from zero); rows without a key (sent before
    migration 0015) count under their recorded number in today's list. Without it, by
    the recorded variant number alone. ``sent_before`` (aware UTC): only messages whose
    ``sent_at`` is earlier count (the one look: their clicks have had time to come in).
    """
    rows = campaign_variant_tallies(conn, campaign, step_id=step_id, sent_before=sent_before).get(
        step_id, []
    )
    if subjects is None:
        counts: dict[int, list[int]] = {}
        for row in rows:
            total = counts.setdefault(row.variant, [0, 0])
            total[0] += row.sent
            total[1] += row.clicks
        return [VariantTally(v, sent, clicks) for v, (sent, clicks) in sorted(counts.items())]
    keys = [subject_key(text) for text in subjects]
    by_number: dict[int, list[int]] = {}
    for row in rows:
        if row.key is None:
            number = legacy_number(row, keys)
        else:
            number = keys.index(row.key) + 1 if row.key in keys else None
        if number is None:
            continue  # a text no longer among the subjects: not in today's test
        total = by_number.setdefault(number, [0, 0])
        total[0] += row.sent
        total[1] += row.clicks
    return [
        VariantTally(n, sent, clicks, keys[n - 1], subjects[n - 1])
        for n, (sent, clicks) in sorted(by_number.items())
    ]


def legacy_number(row: KeyTally, keys: Sequence[str]) -> int | None:
    """The place in today's list (1-based) of a row sent before keys were recorded: by the
    subject the ledger holds when it is one of today's texts (an unpersonalised subject
    is its text), else by the number it was sent under; None when neither fits."""
    if row.subject is not None and (key := subject_key(row.subject)) in keys:
        return list(keys).index(key) + 1
    return row.variant if 1 <= row.variant <= len(keys) else None


def campaign_variant_tallies(
    conn: Connection,
    campaign: str,
    *,
    step_id: str | None = None,
    sent_from: datetime | None = None,
    sent_before: datetime | None = None,
) -> dict[str, list[KeyTally]]:
    """Per step identity, the sent messages that carry a variant, grouped by subject key,
    recorded variant number and whether they were sent after the step's winner.

    One grouped query (the clicks are joined on the delivery id index), so judging a
    step costs the same whenever it is asked; the report uses it too, so it counts what
    the judge counts. ``step_id`` keeps one step; ``sent_from`` (aware UTC) keeps
    messages sent from then on, ``sent_before`` those sent before then. A decision with no
    winner splits nothing: every message of its step counts as the test's.
    """
    decided = and_(_W.c.variant.is_not(None), _W.c.decided_at.is_not(None))
    after = case((and_(decided, _D.c.sent_at >= _W.c.decided_at), 1), else_=0)
    # Rows sent before keys (0015) are told apart by the subject the ledger recorded.
    legacy = case((_D.c.subject_key.is_(None), _D.c.subject), else_=None)
    query = (
        select(
            _D.c.step_id,
            _D.c.subject_key,
            _D.c.subject_variant,
            after,
            legacy,
            func.max(_D.c.subject),
            func.count(distinct(_D.c.id)),
            func.count(distinct(_C.c.delivery_id)),  # NULL (no person's click) not counted
        )
        .select_from(
            _D.join(_E, _E.c.id == _D.c.enrollment_id)
            .outerjoin(_C, (_C.c.delivery_id == _D.c.id) & (_C.c.machine.is_(False)))
            .outerjoin(_W, (_W.c.campaign == _E.c.campaign) & (_W.c.step_id == _D.c.step_id))
        )
        .where(
            _E.c.campaign == campaign,
            _D.c.status == "sent",
            _D.c.subject_variant.is_not(None),
        )
        .group_by(_D.c.step_id, _D.c.subject_key, _D.c.subject_variant, after, legacy)
        .order_by(_D.c.step_id, _D.c.subject_variant, _D.c.subject_key, after)
    )
    if step_id is not None:
        query = query.where(_D.c.step_id == step_id)
    if sent_from is not None:
        query = query.where(_D.c.sent_at.is_not(None), _D.c.sent_at >= to_db_time(sent_from))
    if sent_before is not None:
        query = query.where(_D.c.sent_at.is_not(None), _D.c.sent_at < to_db_time(sent_before))
    tallies: dict[str, list[KeyTally]] = {}
    for step, key, variant, later, _legacy, subject, sent, clicks in conn.execute(query):
        tallies.setdefault(step, []).append(
            KeyTally(step, key, int(variant), subject, bool(later), int(sent), int(clicks or 0))
        )
    return tallies


def _stored(row: Any) -> StoredWinner:
    return StoredWinner(
        campaign=row.campaign,
        step_id=row.step_id,
        variant=row.variant,
        subject=row.subject,
        # A winner decided before keys were recorded: the key of its stored text.
        key=row.subject_key or (None if row.subject is None else subject_key(row.subject)),
        decided_at=from_db_time(row.decided_at),  # type: ignore[arg-type]
        z=row.z,
        p_value=row.p_value,
        tallies=tuple(
            VariantTally(
                int(t["variant"]), int(t["sent"]), int(t["clicks"]), t.get("key"), t.get("subject")
            )
            for t in row.tallies
        ),
    )


def _read(conn: Connection, campaign: str, step_id: str) -> StoredWinner | None:
    row = conn.execute(select(_W).where(_W.c.campaign == campaign, _W.c.step_id == step_id)).first()
    return None if row is None else _stored(row)


def experiment_winners(engine: Engine, campaign: str) -> dict[str, StoredWinner]:
    """Every decided A/B test of ``campaign``, by step identity."""
    with read_transaction(engine) as conn:
        rows = conn.execute(select(_W).where(_W.c.campaign == campaign)).all()
    return {row.step_id: _stored(row) for row in rows}


def judge_experiment(
    engine: Engine,
    campaign: str,
    step_id: str,
    subjects: Sequence[str],
    *,
    decide: Callable[[list[VariantTally]], Decision | None],
    now: datetime,
    sent_before: datetime | None = None,
) -> StoredWinner | None:
    """The step's decision: the recorded one, or the one ``decide`` makes on the counts now.

    ``decide`` gets each variant's counts (messages sent before ``sent_before``, when
    given; variants known by their text, see :func:`variant_tallies`) and returns a
    :class:`Decision` (its ``variant`` None for no significant difference) or None (not
    yet: too few sends). The first decision is recorded, whatever it is, and returned
    ever after: a step is judged once. Deciding happens in one write transaction that
    reads the counts again and inserts the row if none exists; a concurrent decision
    (another worker) wins the unique key and its row is returned. The cheap path (a
    stored row, or not ready) takes no write lock. ``subjects`` are the step's variants
    as written now; ``now`` and ``sent_before`` are aware UTC. Raises StoreError.
    """
    with read_transaction(engine) as conn:
        stored = _read(conn, campaign, step_id)
        if stored is not None:
            return stored
        ready = variant_tallies(conn, campaign, step_id, subjects, sent_before=sent_before)
        if decide(ready) is None:
            return None
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with write_transaction(engine) as conn:
        tallies = variant_tallies(conn, campaign, step_id, subjects, sent_before=sent_before)
        decision = decide(tallies)
        winner = None if decision is None else decision.variant
        if decision is not None and (winner is None or 1 <= winner <= len(subjects)):
            conn.execute(
                dialect.insert(_W)
                .values(
                    campaign=campaign,
                    step_id=step_id,
                    variant=winner,
                    subject=None if winner is None else subjects[winner - 1],
                    subject_key=None if winner is None else subject_key(subjects[winner - 1]),
                    decided_at=to_db_time(now),
                    z=decision.z,
                    p_value=decision.p_value,
                    tallies=[t.as_json() for t in tallies],
                )
                .on_conflict_do_nothing(index_elements=["campaign", "step_id"])
            )
        return _read(conn, campaign, step_id)
