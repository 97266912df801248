"""Compare a campaign's files with what is live in the database: the plan.

What is live is the newest recorded revision's state (see :mod:`._state`), plus the
deliveries themselves: a step that still has scheduled deliveries but no file is
"removed" even when no revision names it. The plan is computed inside the caller's
transaction so ``dripline apply`` acts on exactly what it showed.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ..store import (
    CampaignRevision,
    Delivery,
    Enrollment,
    ExperimentWinner,
    Subscriber,
    country_of,
)
from ._model import AddedStep, CampaignPlan, ContentChange, RemovedStep, RenamedStep, RetimedStep
from ._renames import pair_renames, unnumbered
from ._state import timetable_of

__all__ = ["compute_plan"]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_R = CampaignRevision.__table__
_W = ExperimentWinner.__table__
# A delivery past 'scheduled' (claimed by a worker, being sent, or done): its step was reached.
_REACHED = ("claimed", "sent", "sending", "ambiguous", "failed")
_EXAMPLES = 3  # example people shown per added or re-timed step
# What apply writes on the deliveries of a removed step (a restored step revives them).
REMOVED_NOTE = "step removed from the campaign"


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _synthesized(new_state: dict[str, Any], db_steps: dict[str, int]) -> dict[str, Any]:
    """The live state when no revision was recorded: the deliveries' identities, with the
    files' timing and content for those the files still have (so only identities differ)."""
    by_id = {s["id"]: s for s in new_state["steps"]}
    steps = []
    for identity, position in sorted(db_steps.items(), key=lambda item: item[1]):
        known = by_id.get(identity)
        steps.append(
            {**known, "position": position}
            if known
            else {"id": identity, "position": position, "day": None, "immediately": False}
        )
    return {"schedule": new_state["schedule"], "steps": steps}


def _revivable(row: Any) -> bool:
    """A delivery cancelled because its step was removed: restoring the step revives it."""
    return row.status == "cancelled" and row.last_error == REMOVED_NOTE


def _carry_renames(
    plan: CampaignPlan,
    renames: dict[str, tuple[str, str]],
    rows: dict[int, dict[str, Any]],
    db_steps: dict[str, int],
    waiting: set[str],
) -> None:
    """Treat each renamed step as the step it was: its deliveries (sent ones included) are
    read under the new identity, so nobody who had it gets it again; apply moves them."""
    for new_id, (old_id, why) in renames.items():
        plan.ops.renames[old_id] = new_id
        plan.renamed.append(RenamedStep(old_id, new_id, why))
        for own in rows.values():
            if old_id in own and new_id not in own:
                own[new_id] = own.pop(old_id)
        if old_id in db_steps:
            db_steps[new_id] = db_steps.pop(old_id)
        if old_id in waiting:
            waiting.discard(old_id)
            waiting.add(new_id)
    plan.added = [a for a in plan.added if a.id not in renames]


def _timing_changes(old: dict[str, Any], new: dict[str, Any], schedule: bool) -> list[str]:
    changes = []
    if old["position"] != new["position"]:
        changes.append(f"moved from {old['position']} to {new['position']} (among kept steps)")
    if old.get("day") != new["day"]:
        changes.append(f"day {old.get('day')} -> {new['day']}")
    if old.get("immediately") != new["immediately"]:
        changes.append("send immediately" if new["immediately"] else "no longer immediate")
    if schedule:
        changes.append("schedule (send_time, weekdays or time zone)")
    return changes


def _content_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    if "text" not in old:
        return []
    changed = []
    if old["subject"] != new["subject"]:
        changed.append("subject")
    # The footer's "(N of M)" follows the numbering: not a change of this step's content.
    if unnumbered(old["text"]) != unnumbered(new["text"]):
        changed.append("body")
    if old["html_digest"] != new["html_digest"] and not changed:
        changed.append("layout or HTML")
    # States recorded before issue 18 have neither key: the same as no condition, one subject.
    if old.get("when", "") != new.get("when", ""):
        changed.append("when")
    if old.get("subjects", []) != new.get("subjects", []):
        changed.append("subject variants")
    return changed


def _variant_notes(
    old: dict[str, Any], new: dict[str, Any], decision: tuple[str | None, Any] | None
) -> list[str]:
    """What a change of ``subjects`` does to the step's A/B test (counts follow each
    subject's text: dripline.experiments). ``decision``: the stored one, (winner's text or
    None for no significant difference, when), or None while the test is open."""
    before, after = list(old.get("subjects") or []), list(new.get("subjects") or [])
    if before == after or not before:
        return []
    added = [text for text in after if text not in before]
    if decision is not None:
        winner, decided_at = decision
        when = str(decided_at)[:10]
        if winner is not None and after and winner not in after:
            return [
                f"the A/B winner {winner!r} is no longer among the subjects: the split "
                "resumes among these (the test is not judged again)"
            ]
        if winner is not None and added:
            return [
                f"this step's A/B test was decided on {when} ({winner!r} won): the new "
                f"variant(s) {', '.join(map(repr, added))} will never be sent; to test "
                "them, use a new step"
            ]
        if winner is None and added:
            return [
                f"this step's A/B test was judged on {when} (no significant difference): "
                f"the new variant(s) {', '.join(map(repr, added))} join the split but are "
                "never judged"
            ]
        return []
    if not after:
        return ["the A/B test ends: one subject from now on (the report keeps its counts)"]
    edited = [text for text in after if text not in before]
    if not edited:
        return ["A/B variants reordered: each subject keeps its counts (they follow the text)"]
    return [
        f"A/B counts follow the subject's text: {len(edited)} new or edited variant(s) "
        f"start from zero ({', '.join(repr(t) for t in edited)})"
    ]


def _heading(state: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The diff's header lines: the subject, then ``when`` and variants if either side has them."""
    lines = [f"Subject: {state['subject']}"]
    if state.get("when") or other.get("when"):
        lines.append(f"When: {state.get('when') or '(every subscriber)'}")
    if state.get("subjects") or other.get("subjects"):
        variants = " | ".join(state.get("subjects") or []) or "(one subject)"
        lines.append(f"Subject variants: {variants}")
    return lines


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    before = [*_heading(old, new), "", *old["text"].splitlines()]
    after = [*_heading(new, old), "", *new["text"].splitlines()]
    lines = difflib.unified_diff(
        before, after, f"{old['id']} (live)", f"{new['id']} (campaign files)", lineterm=""
    )
    return "\n".join(lines)


def compute_plan(
    conn: Connection, campaign: str, new_state: dict[str, Any], now: datetime
) -> CampaignPlan:
    """The plan for ``campaign``: what applying ``new_state`` changes, read in ``conn``."""
    revision = conn.execute(
        select(_R.c.id, _R.c.state)
        .where(_R.c.campaign == campaign)
        .order_by(_R.c.id.desc())
        .limit(1)
    ).first()
    enrollments = conn.execute(
        select(
            _E.c.id,
            _E.c.status,
            _E.c.enrolled_at,
            _S.c.status.label("s_status"),
            _S.c.email,
            _S.c.timezone,
            _S.c.attributes,
        )
        .join(_S, _S.c.id == _E.c.subscriber_id)
        .where(_E.c.campaign == campaign)
        .order_by(_E.c.id)
    ).all()
    # Each judged step's decision: its winner's text (None: no significant difference)
    # and when it was made.
    winners = {
        step_id: (subject, decided_at)
        for step_id, subject, decided_at in conn.execute(
            select(_W.c.step_id, _W.c.subject, _W.c.decided_at).where(_W.c.campaign == campaign)
        )
    }
    rows: dict[int, dict[str, Any]] = {}
    db_steps: dict[str, int] = {}
    waiting: set[str] = set()  # identities with scheduled deliveries
    reached: set[str] = set()  # identities someone was sent (or may have been)
    for row in conn.execute(
        select(
            _D.c.id,
            _D.c.enrollment_id,
            _D.c.step_id,
            _D.c.step,
            _D.c.status,
            _D.c.due_at,
            _D.c.sent_at,
            _D.c.first_attempt_at,
            _D.c.last_error,
        )
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(_E.c.campaign == campaign)
    ):
        rows.setdefault(row.enrollment_id, {})[row.step_id] = row
        db_steps[row.step_id] = min(db_steps.get(row.step_id, row.step), row.step)
        if row.status == "scheduled":
            waiting.add(row.step_id)
        elif row.status in _REACHED:
            reached.add(row.step_id)
    plan = CampaignPlan(
        campaign,
        new_state,
        live_revision=revision.id if revision else None,
        live_enrollments=sum(e.status == "active" for e in enrollments),
    )
    if revision is None and not db_steps:
        return plan  # nothing is live: the first enrollment records the baseline
    if revision is not None:
        old_state = revision.state
    else:  # identities only cancelled rows still name are history, not live steps; a sent
        # one is live, so a renamed file is paired with it rather than sent again
        in_files = {s["id"] for s in new_state["steps"]}
        live = {i: n for i, n in db_steps.items() if i in in_files | waiting | reached}
        old_state = _synthesized(new_state, live)
    old_by_id = {s["id"]: s for s in old_state["steps"]}
    new_steps = new_state["steps"]
    new_by_id = {s["id"]: s for s in new_steps}
    new_ids = [s["id"] for s in new_steps]
    schedule_changed = old_state["schedule"] != new_state["schedule"]

    plan.added = [
        AddedStep(s["id"], s["position"], s["backfill"])
        for s in new_steps
        if s["id"] not in old_by_id
    ]
    gone = [s["id"] for s in old_state["steps"] if s["id"] not in new_by_id]
    # A step no revision names (the database predates revisions) but still scheduled.
    gone += sorted(i for i in waiting if i not in new_by_id and i not in gone)
    renames = pair_renames(old_state["steps"], new_steps, [a.id for a in plan.added], gone)
    if renames:
        _carry_renames(plan, renames, rows, db_steps, waiting)
        gone = [i for i in gone if i not in plan.ops.renames]
        old_by_id = {plan.ops.renames.get(i, i): s for i, s in old_by_id.items()}
        for new_id, (old_id, _) in renames.items():
            if "text" not in old_by_id[new_id]:  # known by position only: nothing else to compare
                position = old_by_id[new_id]["position"]
                old_by_id[new_id] = {**new_by_id[new_id], "id": old_id, "position": position}
    plan.removed = [RemovedStep(i) for i in gone]
    timing: dict[str, RetimedStep] = {}
    # Moved means reordered among the steps both sides have: an insert or removal that only
    # renumbers the others is not a move (their positions are still updated).
    old_ids = [plan.ops.renames.get(s["id"], s["id"]) for s in old_state["steps"]]
    shared_old = [i for i in old_ids if i in new_by_id]
    shared_new = [i for i in new_ids if i in old_by_id]
    for s in new_steps:
        old = old_by_id.get(s["id"])
        if old is None:
            continue
        rank = (shared_old.index(s["id"]) + 1, shared_new.index(s["id"]) + 1)
        changes = _timing_changes(
            {**old, "position": rank[0]}, {**s, "position": rank[1]}, schedule_changed
        )
        if changes:
            timing[s["id"]] = RetimedStep(s["id"], changes)
        if (
            old["position"] != s["position"]
            or db_steps.get(s["id"], s["position"]) != s["position"]
        ):
            plan.ops.positions[s["id"]] = s["position"]
        changed = _content_changes(old, s)
        if changed:
            was = {new: old for old, new in plan.ops.renames.items()}.get(s["id"], s["id"])
            winner = winners.get(s["id"], winners.get(was))
            notes = _variant_notes(old, s, winner) if "text" in old else []
            plan.content.append(ContentChange(s["id"], changed, diff=_diff(old, s), notes=notes))
    content_ids = {c.id: c for c in plan.content}
    renamed = {r.new: r for r in plan.renamed}
    for step in plan.added:
        step.removed_before = any(
            (row := own.get(step.id)) is not None and _revivable(row) for own in rows.values()
        )
    removed = {r.id: r for r in plan.removed}

    table = timetable_of(new_state)
    for e in enrollments:
        own = rows.get(e.id, {})
        for identity, row in own.items():
            if identity in renamed:
                if row.status in _REACHED:
                    renamed[identity].received += 1
                elif row.status == "scheduled":
                    renamed[identity].scheduled += 1
            if row.status != "scheduled":
                continue
            if identity in removed:
                removed[identity].cancelled += 1
                plan.ops.cancels.append(row.id)
            elif identity in content_ids and e.status == "active":
                content_ids[identity].pending += 1
        if e.s_status != "active" or e.status not in ("active", "completed"):
            continue
        gets: list[AddedStep] = []
        for step in plan.added:
            mine = own.get(step.id)
            if mine is not None and not _revivable(mine):
                continue  # had it (or has it coming): nobody gets a step twice
            later = [own[i] for i in new_ids[step.position :] if i in own]
            reached = e.status == "completed" or any(
                r.status != "scheduled" and not _revivable(r) for r in later
            )
            if reached and (step.backfill or e.status == "active"):
                step.past += 1
            if not reached or step.backfill:
                gets.append(step)
        pending = [i for i, r in own.items() if r.status == "scheduled" and i in new_by_id]
        if not gets and not any(i in timing for i in pending):
            continue
        # This person's schedule changes: every step still to come is timed afresh, so the
        # steps after a moved or inserted one stay apart from it.
        moved = pending
        enrolled_at = _utc(e.enrolled_at)
        country = country_of(e.attributes)
        expected = dict(
            zip(new_ids, table.due_times(enrolled_at, e.timezone, country), strict=True)
        )
        done = [
            (new_by_id[i]["position"], _utc(r.sent_at or r.first_attempt_at) or now)
            for i, r in own.items()
            if i in new_by_id and r.status in _REACHED
        ]
        after_anchor: dict[int, datetime] = {}
        if done:
            anchor_position, anchor_time = max(done)
            after_anchor = table.retime_remaining(anchor_position, anchor_time, e.timezone, country)

        def due_for(
            identity: str, expected: dict = expected, after_anchor: dict = after_anchor
        ) -> datetime:
            due = expected[identity]
            later = after_anchor.get(new_by_id[identity]["position"])
            if later is not None and later > due:
                due = later  # keep the spacing after what this person was last sent
            return max(due, now)

        for step in gets:
            due = due_for(step.id)
            step.enrollments += 1
            if len(step.examples) < _EXAMPLES:
                step.examples.append((e.email, due))
            if step.id in own:  # cancelled by a removal, restored: the row is scheduled again
                step.restored += 1
                plan.ops.revive.append({"row_id": own[step.id].id, "new_due": due})
            else:
                plan.ops.inserts.append(
                    {
                        "enrollment_id": e.id,
                        "step": step.position,
                        "step_id": step.id,
                        "due_at": due,
                        "status": "scheduled",
                        "attempts": 0,
                    }
                )
            if e.status == "completed":
                plan.ops.reactivate.add(e.id)
        for identity in moved:
            row = own[identity]
            old_due, new_due = _utc(row.due_at), due_for(identity)
            if old_due is None or new_due == old_due or (old_due <= now and new_due <= now):
                continue  # unchanged, or due already either way
            entry = timing.setdefault(
                identity, RetimedStep(identity, ["kept apart from a changed step"])
            )
            entry.deliveries += 1
            if len(entry.examples) < _EXAMPLES:
                entry.examples.append((e.email, old_due, new_due))
            plan.ops.retimes.append((row.id, new_due))
    plan.retimed = sorted(timing.values(), key=lambda t: new_by_id[t.id]["position"])
    return plan
