"""Editing a live campaign safely: ``dripline plan`` and ``dripline apply``.

A campaign's *state* (:func:`campaign_state`) is its schedule and, per step, its
identity, position, timing and a sample rendering. The database keeps the state it
last applied (a *revision*); :func:`plan_campaign` compares that with the files and
with the deliveries, and :func:`apply_campaign` carries the plan out in one
transaction.
"""

from __future__ import annotations

from ._apply import apply_campaign, ensure_baseline, plan_campaign, revisions
from ._model import AddedStep, CampaignPlan, ContentChange, RemovedStep, RetimedStep
from ._state import campaign_state, timetable_of

__all__ = [
    "AddedStep",
    "CampaignPlan",
    "ContentChange",
    "RemovedStep",
    "RetimedStep",
    "apply_campaign",
    "campaign_state",
    "ensure_baseline",
    "plan_campaign",
    "revisions",
    "timetable_of",
]
