"""What a plan says: the changes per campaign, as text and JSON, and the writes apply makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "AddedStep",
    "CampaignPlan",
    "ContentChange",
    "Ops",
    "RemovedStep",
    "RenamedStep",
    "RetimedStep",
]


@dataclass
class AddedStep:
    id: str
    position: int
    backfill: bool
    enrollments: int = 0  # who will get it
    # Enrollments already past its position: without backfill they do not get it (active
    # ones counted); with backfill they do (counted among ``enrollments`` too).
    past: int = 0
    examples: list[tuple[str, datetime]] = field(default_factory=list)  # (email, due UTC)
    restored: int = 0  # of ``enrollments``: their delivery, cancelled by a removal, is revived
    removed_before: bool = False  # the identity has deliveries cancelled by an earlier removal

    def line(self) -> str:
        kind = "restored step" if self.removed_before else "new step"
        head = f"  + {self.id} ({kind} {self.position}): "
        if self.backfill:
            who = f"{self.enrollments} enrollment(s) get it, {self.past} of them already past it"
            who += " (backfill)"
        else:
            who = (
                f"{self.enrollments} enrollment(s) get it; {self.past} already past it do not"
                " (no backfill)"
            )
        if self.enrollments == 0:
            why = (
                f"all {self.past} active enrollment(s) are already past it and it has no "
                "`backfill = true`"
                if self.past
                else "no active enrollment in this campaign"
            )
            who = f"reaches nobody: {why}"
        return head + who


@dataclass
class RenamedStep:
    old: str
    new: str
    reason: str  # the evidence: "same file", "same content", "same position and subject"...
    received: int = 0  # enrollments that already got it: they do not get it again
    scheduled: int = 0  # scheduled deliveries that keep their place under the new identity

    def line(self) -> str:
        return (
            f"  = {self.old} -> {self.new} (renamed: {self.reason}): {self.received} "
            "recipient(s) already received it and will not get it again; "
            f"{self.scheduled} scheduled delivery(ies) carry over"
        )


@dataclass
class RemovedStep:
    id: str
    cancelled: int = 0  # scheduled deliveries apply cancels


@dataclass
class RetimedStep:
    id: str
    changes: list[str]  # e.g. "position 2 -> 3", "day 3 -> 4"
    deliveries: int = 0  # scheduled deliveries that get a new due time
    examples: list[tuple[str, datetime, datetime]] = field(default_factory=list)


@dataclass
class ContentChange:
    id: str
    # "subject", "body", "layout or HTML", "when", "subject variants"
    changed: list[str]
    pending: int = 0  # scheduled deliveries that will get the new version
    diff: str = ""  # unified diff of the plain text for the first sample subscriber
    # What a change of A/B subjects does to the step's test (counts follow the text; a
    # stored winner edited out lets the split resume).
    notes: list[str] = field(default_factory=list)


@dataclass
class Ops:
    """The writes that carry a plan out (see :func:`~._apply.apply_campaign`)."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[int] = field(default_factory=list)
    retimes: list[tuple[int, datetime]] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    reactivate: set[int] = field(default_factory=set)
    renames: dict[str, str] = field(default_factory=dict)  # old identity -> new
    revive: list[dict[str, Any]] = field(default_factory=list)  # cancelled rows scheduled again


@dataclass
class CampaignPlan:
    """What applying the files would change for people already in ``campaign``."""

    campaign: str
    state: dict[str, Any]  # the files' state, recorded by apply
    added: list[AddedStep] = field(default_factory=list)
    removed: list[RemovedStep] = field(default_factory=list)
    retimed: list[RetimedStep] = field(default_factory=list)
    content: list[ContentChange] = field(default_factory=list)
    renamed: list[RenamedStep] = field(default_factory=list)
    live_revision: int | None = None  # the revision row now live (None: none recorded)
    live_enrollments: int = 0  # active enrollments: the people a change reaches
    ops: Ops = field(default_factory=Ops)

    @property
    def changes(self) -> bool:
        return bool(self.added or self.removed or self.retimed or self.content or self.renamed)

    def summary(self) -> str:
        if not self.changes:
            return "no changes"
        text = (
            f"{len(self.added)} step(s) added, {len(self.removed)} removed, "
            f"{len(self.retimed)} moved or re-timed, {len(self.content)} with new content"
        )
        return text + (f", {len(self.renamed)} renamed" if self.renamed else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "changes": self.changes,
            "summary": self.summary(),
            "added": [
                {
                    "step": a.id,
                    "position": a.position,
                    "backfill": a.backfill,
                    "enrollments": a.enrollments,
                    "already_past": a.past,
                    "examples": [{"email": e, "due": d.isoformat()} for e, d in a.examples],
                    "restored": a.restored,
                }
                for a in self.added
            ],
            "removed": [{"step": r.id, "cancelled": r.cancelled} for r in self.removed],
            "retimed": [
                {
                    "step": r.id,
                    "changes": r.changes,
                    "deliveries": r.deliveries,
                    "examples": [
                        {"email": e, "old": o.isoformat(), "new": n.isoformat()}
                        for e, o, n in r.examples
                    ],
                }
                for r in self.retimed
            ],
            "content": [
                {
                    "step": c.id,
                    "changed": c.changed,
                    "pending": c.pending,
                    "diff": c.diff,
                    "notes": c.notes,
                }
                for c in self.content
            ],
            "renamed": [
                {
                    "from": r.old,
                    "to": r.new,
                    "reason": r.reason,
                    "received": r.received,
                    "scheduled": r.scheduled,
                }
                for r in self.renamed
            ],
        }

    def lines(self) -> list[str]:
        """The plan as text, one change per line (diffs indented under their step)."""
        out = [f"{self.campaign}: {self.summary()}"]
        out += [r.line() for r in self.renamed]
        for a in self.added:
            out.append(a.line())
            out += [f"      {e}: due {d:%Y-%m-%d %H:%M} UTC" for e, d in a.examples]
        for r in self.removed:
            out.append(f"  - {r.id}: {r.cancelled} scheduled delivery(ies) will be cancelled")
        for t in self.retimed:
            out.append(
                f"  ~ {t.id} ({', '.join(t.changes)}): {t.deliveries} scheduled delivery(ies) "
                "get a new due time"
            )
            out += [
                f"      {e}: {o:%Y-%m-%d %H:%M} -> {n:%Y-%m-%d %H:%M} UTC" for e, o, n in t.examples
            ]
        for c in self.content:
            out.append(
                f"  * {c.id} ({', '.join(c.changed)} changed): {c.pending} pending "
                "delivery(ies) will get the new version"
            )
            out += [f"      note: {note}" for note in c.notes]
            out += [f"      {line}" for line in c.diff.splitlines()]
        return out
