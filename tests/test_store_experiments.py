"""A/B winners in the store, on SQLite and PostgreSQL: people's unique clicks per variant,
judged only at the threshold, decided once even when two workers judge at the same time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from dripline.campaign import Campaign
from dripline.experiments import judge_tallies, pick_winner
from dripline.store import (
    Decision,
    Delivery,
    Enrollment,
    ExperimentWinner,
    NewSubscriber,
    enroll_many,
    experiment_winners,
    judge_experiment,
    link_positions,
    normalize_email,
    read_transaction,
    record_click,
    subject_key,
    variant_tallies,
    write_transaction,
)
from dripline.timetable import Timetable

NOW = datetime(2026, 3, 5, 18, tzinfo=UTC)
LATER = NOW + timedelta(hours=2)  # well after the machine-click window
SLUG = "ketamine-therapy"
SUBJECTS = ("Subject A", "Subject B")


def _sent(engine: Engine, campaign: Campaign, step_id: str, people: int) -> dict[int, list[int]]:
    """``people`` enrolled; their ``step_id`` messages sent, half with each variant."""
    enroll_many(
        engine,
        Timetable.of(campaign),
        SLUG,
        (
            NewSubscriber(normalize_email(f"p{i}@example.com"), subscribed_at=NOW)
            for i in range(people)
        ),
        now=NOW,
    )
    with write_transaction(engine) as conn:
        ids = conn.scalars(
            select(Delivery.id)
            .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
            .where(Enrollment.campaign == SLUG, Delivery.step_id == step_id)
            .order_by(Delivery.id)
        ).all()
        by_variant = {1: list(ids[: people // 2]), 2: list(ids[people // 2 :])}
        for variant, chosen in by_variant.items():
            conn.execute(
                update(Delivery)
                .where(Delivery.id.in_(chosen))
                .values(status="sent", sent_at=NOW.replace(tzinfo=None), subject_variant=variant)
            )
    link_positions(engine, SLUG, step_id, ["https://a.example/landing"])
    return by_variant


def _click(engine: Engine, delivery_id: int, kind: str = "browser", at: datetime = LATER) -> None:
    hit = record_click(
        engine, delivery_id, 0, names_campaign=lambda s: s == SLUG, user_agent_class=kind, now=at
    )
    assert hit is not None


def test_only_peoples_unique_clicks_count_and_the_threshold_is_exact(engine, campaign):
    step = campaign.steps[0].id
    sent = _sent(engine, campaign, step, 40)
    for delivery in sent[1][:10]:
        _click(engine, delivery)
    _click(engine, sent[1][0])  # the same person again: still one person
    _click(engine, sent[2][0])
    for delivery in sent[2][1:8]:
        _click(engine, delivery, "scanner")  # link scanners: machine clicks
    _click(engine, sent[2][9], at=NOW + timedelta(seconds=2))  # seconds after sending
    with read_transaction(engine) as conn:
        tallies = variant_tallies(conn, SLUG, step)
    assert [(t.variant, t.sent, t.clicks) for t in tallies] == [(1, 20, 10), (2, 20, 1)]

    def judge(after: int, decide=None):
        rule = decide or (lambda tallies: pick_winner(tallies, 2, after))
        return judge_experiment(engine, SLUG, step, SUBJECTS, decide=rule, now=LATER)

    assert judge(21) is None  # 20 sent of each, one short of 21: not judged
    assert experiment_winners(engine, SLUG) == {}
    winner = judge(20)  # exactly 20: judged, and 10/20 against 1/20 is clear
    assert winner is not None and (winner.variant, winner.subject) == (1, "Subject A")
    assert winner.p_value < 0.01 and winner.decided_at == LATER
    assert [(t.variant, t.sent, t.clicks) for t in winner.tallies] == [(1, 20, 10), (2, 20, 1)]
    # Decided once: later counts (variant 2 catching up) or another rule change nothing.
    for delivery in sent[2][10:20]:
        _click(engine, delivery)
    again = judge(20, decide=lambda tallies: Decision(2, 9.0, 1e-9))
    assert again == winner
    assert experiment_winners(engine, SLUG) == {step: winner}


@pytest.mark.parametrize("verdicts", [(1, 2), (None, 1)])  # None: no significant difference
def test_two_workers_judging_at_once_store_one_decision_and_both_use_it(engine, campaign, verdicts):
    step = campaign.steps[1].id
    _sent(engine, campaign, step, 10)
    start = threading.Barrier(2)
    results: dict[int | None, object] = {}

    def worker(variant: int | None) -> None:
        calls: list[int] = []

        def decide(tallies):
            # Each worker's own verdict (as if their counts differed), and both have read
            # the counts before either writes: both reach the insert.
            calls.append(len(tallies))
            if len(calls) == 1:
                start.wait(timeout=10)
            return Decision(variant, 3.0, 0.001)

        results[variant] = judge_experiment(engine, SLUG, step, SUBJECTS, decide=decide, now=LATER)

    threads = [threading.Thread(target=worker, args=(v,)) for v in verdicts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    first, second = (results[v] for v in verdicts)
    assert first is not None and first == second
    with read_transaction(engine) as conn:
        rows = conn.scalar(select(func.count()).select_from(ExperimentWinner))
    assert rows == 1


def _keyed(engine: Engine, ids: list[int], subject: str | None, variant: int) -> None:
    """Record these sent deliveries as carrying ``subject`` (None: sent before keys)."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(
                subject_variant=variant,
                subject_key=subject_key(subject) if subject is not None else None,
                subject=subject,
            )
        )


def test_rows_sent_before_keys_count_under_the_subject_the_ledger_recorded(engine, campaign):
    """probe-18c MEDIUM F: rows sent before migration 0015 have no key but the ledger holds
    their subject: after a reorder they count under that text, not under their old
    number; a personalised subject (not one of today's texts) falls back to the number."""
    step = campaign.steps[0].id
    sent = _sent(engine, campaign, step, 40)
    red, gold = sent[1][:20], sent[2][:20]
    with write_transaction(engine) as conn:  # as 0015 left them: subject, no key
        conn.execute(
            update(Delivery).where(Delivery.id.in_(red)).values(subject_key=None, subject="Red")
        )
        conn.execute(
            update(Delivery)
            .where(Delivery.id.in_(gold[:15]))
            .values(subject_key=None, subject="Gold")
        )
        conn.execute(  # personalised: "Gold, Ann" is no text of the list
            update(Delivery)
            .where(Delivery.id.in_(gold[15:]))
            .values(subject_key=None, subject="Gold, Ann")
        )
    for delivery in red[:12]:
        _click(engine, delivery)
    with read_transaction(engine) as conn:
        tallies = variant_tallies(conn, SLUG, step, ["Gold", "Red"])  # reordered since
    # Gold: its 15 by text plus the 5 personalised ones sent as #2, which today is Red's
    # place: those 5 count under Red (the number is all they have).
    assert [(t.variant, t.subject, t.sent, t.clicks) for t in tallies] == [
        (1, "Gold", 15, 0),
        (2, "Red", 25, 12),
    ]


def test_counts_follow_the_subject_text_so_a_reorder_crowns_the_subject_clicked(engine, campaign):
    """probe-18b HIGH 1: ["A", "B"] sent, B clicked far more, then the list reordered to
    ["B", "A"] before the decision: the winner stored is B's text (and key), judged on
    B's own counts; an edited text starts from zero; rows without a key count under their
    number in today's list."""
    step = campaign.steps[0].id
    sent = _sent(engine, campaign, step, 60)
    a, b = sent[1][:20], sent[2][:20]
    _keyed(engine, a, "Subject A", 1)
    _keyed(engine, b, "Subject B", 2)
    legacy = sent[1][20:] + sent[2][20:]  # 10 + 10 sent before keys were recorded
    for delivery in [*b[:10], a[0], *sent[1][20:23]]:
        _click(engine, delivery)
    reordered = ["Subject B", "Subject A"]
    with read_transaction(engine) as conn:
        tallies = variant_tallies(conn, SLUG, step, reordered)
        edited = variant_tallies(conn, SLUG, step, ["Subject B", "Subject A, reworded"])
    # Today's #1 is B: B's 20 keyed sends, plus the 10 keyless ones recorded as #1 (their
    # 3 clicks); #2 is A with the 10 keyless #2 rows.
    assert [(t.variant, t.key, t.sent, t.clicks) for t in tallies] == [
        (1, subject_key("Subject B"), 30, 13),
        (2, subject_key("Subject A"), 30, 1),
    ]
    assert [(t.variant, t.sent, t.clicks) for t in edited] == [(1, 30, 13), (2, 10, 0)]
    assert len(legacy) == 20
    winner = judge_experiment(
        engine, SLUG, step, reordered, decide=lambda t: pick_winner(t, 2, 20), now=LATER
    )
    assert winner is not None
    assert (winner.variant, winner.subject, winner.key) == (
        1,
        "Subject B",
        subject_key("Subject B"),
    )
    assert [(t.key, t.subject, t.sent, t.clicks) for t in winner.tallies] == [
        (subject_key("Subject B"), "Subject B", 30, 13),
        (subject_key("Subject A"), "Subject A", 30, 1),
    ]
    with read_transaction(engine) as conn:
        stored = conn.execute(select(ExperimentWinner.subject, ExperimentWinner.subject_key)).one()
    assert tuple(stored) == ("Subject B", subject_key("Subject B"))


def test_the_one_look_counts_messages_sent_before_the_cut_off_and_no_winner_is_final(
    engine, campaign
):
    step = campaign.steps[2].id
    sent = _sent(engine, campaign, step, 40)  # sent at NOW, 20 of each variant
    late = sent[1][10:] + sent[2][10:]  # 10 of each sent an hour later
    with write_transaction(engine) as conn:
        conn.execute(
            update(Delivery)
            .where(Delivery.id.in_(late))
            .values(sent_at=(NOW + timedelta(hours=1)).replace(tzinfo=None))
        )
    for delivery in sent[1][:3] + sent[2][:2] + sent[1][10:20]:  # the late A's all clicked
        _click(engine, delivery)
    cut_off = NOW + timedelta(minutes=30)
    with read_transaction(engine) as conn:
        before = variant_tallies(conn, SLUG, step, sent_before=cut_off)
        everything = variant_tallies(conn, SLUG, step)
    assert [(t.variant, t.sent, t.clicks) for t in before] == [(1, 10, 3), (2, 10, 2)]
    assert [(t.variant, t.sent, t.clicks) for t in everything] == [(1, 20, 13), (2, 20, 2)]
    assert pick_winner(everything, 2, 10) is not None  # all counts: a "winner"

    def judge(decide):
        return judge_experiment(
            engine, SLUG, step, SUBJECTS, decide=decide, now=LATER, sent_before=cut_off
        )

    assert judge(lambda tallies: judge_tallies(tallies, 2, 11)) is None  # 10 < 11: not yet
    assert judge(lambda tallies: judge_tallies(tallies, 2, 10)) is None  # 5 clicks < 10: not yet
    assert experiment_winners(engine, SLUG) == {}
    for delivery in sent[1][3:6] + sent[2][2:4]:  # more people's clicks on the early ones
        _click(engine, delivery)
    decided = judge(lambda tallies: judge_tallies(tallies, 2, 10))
    assert decided is not None and (decided.variant, decided.subject) == (None, None)
    assert decided.p_value > 0.05 and decided.decided_at == LATER
    assert [(t.variant, t.sent, t.clicks) for t in decided.tallies] == [(1, 10, 6), (2, 10, 4)]
    # Never judged again: a later look that would find a winner gets the recorded decision.
    assert judge(lambda tallies: Decision(1, 9.0, 1e-9)) == decided
    assert experiment_winners(engine, SLUG) == {step: decided}
