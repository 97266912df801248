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

from ..store import CampaignRevision, Delivery, Enrollment, Subscriber, country_of
from ._model import AddedStep, CampaignPlan, ContentChange, RemovedStep, RetimedStep
from ._state import timetable_of

__all__ = ["compute_plan"]

_D = Delivery.__table__
_E = Enrollment.__table__
_S = Subscriber.__table__
_R = CampaignRevision.__table__
# A delivery past 'scheduled' (claimed by a worker, being sent, or done): its step was reached.
_REACHED = ("claimed", "sent", "sending", "ambiguous", "failed")
_EXAMPLES = 3  # example people shown per added or re-timed step


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
    if old["text"] != new["text"]:
        changed.append("body")
    if old["html_digest"] != new["html_digest"] and not changed:
        changed.append("layout or HTML")
    # States recorded before issue 18 have neither key: the same as no condition, one subject.
    if old.get("when", "") != new.get("when", ""):
        changed.append("when")
    if old.get("subjects", []) != new.get("subjects", []):
        changed.append("subject variants")
    return changed


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
    rows: dict[int, dict[str, Any]] = {}
    db_steps: dict[str, int] = {}
    waiting: set[str] = set()  # identities with scheduled deliveries
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
        )
        .join(_E, _E.c.id == _D.c.enrollment_id)
        .where(_E.c.campaign == campaign)
    ):
        rows.setdefault(row.enrollment_id, {})[row.step_id] = row
        db_steps[row.step_id] = min(db_steps.get(row.step_id, row.step), row.step)
        if row.status == "scheduled":
            waiting.add(row.step_id)
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
    else:  # identities only cancelled rows still name are history, not live steps
        in_files = {s["id"] for s in new_state["steps"]}
        live = {i: n for i, n in db_steps.items() if i in in_files or i in waiting}
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
    plan.removed = [RemovedStep(i) for i in gone]
    timing: dict[str, RetimedStep] = {}
    # Moved means reordered among the steps both sides have: an insert or removal that only
    # renumbers the others is not a move (their positions are still updated).
    shared_old = [s["id"] for s in old_state["steps"] if s["id"] in new_by_id]
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
            plan.content.append(ContentChange(s["id"], changed, diff=_diff(old, s)))
    content_ids = {c.id: c for c in plan.content}
    removed = {r.id: r for r in plan.removed}

    table = timetable_of(new_state)
    for e in enrollments:
        own = rows.get(e.id, {})
        for identity, row in own.items():
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
            if step.id in own:
                continue
            later = [own[i] for i in new_ids[step.position :] if i in own]
            reached = e.status == "completed" or any(r.status != "scheduled" for r in later)
            if not reached or step.backfill:
                gets.append(step)
            elif e.status == "active":
                step.past += 1
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
