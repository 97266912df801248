"""Campaigns and their compiled steps by slug, for a long-running dispatcher.

Loaded on first use, forgotten when a file under ``campaigns/`` or ``templates/``
changes. Compiling a step and rendering a message run under a
:class:`~dripline._budget.RenderBudget`: a step whose template runs past it is
remembered as too slow (until its files change) and reported as a
:class:`StepTooSlowError` naming its file and line, so its deliveries are deferred
like those of a broken campaign file while other campaigns go on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ._budget import DEFAULT_RENDER_BUDGET, BudgetExceeded, RenderBudget, RenderCancelled
from .campaign import Campaign, line_of_key, load_campaign
from .conditions import step_applies
from .errors import CampaignError, DriplineError
from .render import CampaignRenderer, CompiledStep, Recipient, layout_place
from .templating import RenderBudgetExceeded, runaway_position, time_budget

__all__ = ["CampaignLibrary", "RenderCancelled", "StepTooSlowError"]

log = logging.getLogger("dripline.dispatch")


class StepTooSlowError(CampaignError):
    """A step's template ran past the render budget (a runaway loop?)."""


class CampaignLibrary:
    """Campaigns and their compiled steps by slug, loaded on first use.

    :meth:`refresh` (called at the start of every dispatch pass) drops what was
    loaded when a file under ``campaigns/`` or ``templates/`` changed, so a long
    running ``dripline run`` sends what is in git now, not what was there at start.
    """

    def __init__(
        self,
        campaigns_dir: Path,
        templates_dir: Path,
        *,
        render_budget: float | None = DEFAULT_RENDER_BUDGET,
        vet: Callable[[Campaign], None] | None = None,
    ) -> None:
        self.campaigns_dir = campaigns_dir
        self.templates_dir = templates_dir
        # Raises CampaignError for a campaign that must not be sent as it stands
        # (placeholders left in it): its deliveries wait, like a broken file's.
        self.vet = vet
        self.budget = RenderBudget(render_budget)
        self._renderers: dict[str, CampaignRenderer] = {}
        self._too_slow: dict[tuple[str, int], StepTooSlowError] = {}
        # Campaigns whose layout compiles past the budget, until their files change.
        self._slow_layout: dict[str, StepTooSlowError] = {}
        # Campaigns that load but ``vet`` refused: (why, the campaign as loaded).
        self._unready: dict[str, tuple[CampaignError, Campaign]] = {}
        self._signature = self._files_signature()

    def _files_signature(self) -> tuple[int, int]:
        """(newest modification time, number of files) of the campaign and template files."""
        newest = count = 0
        for folder in (self.campaigns_dir, self.templates_dir):
            if folder.is_dir():
                for path in folder.rglob("*"):
                    try:
                        newest = max(newest, path.stat().st_mtime_ns)
                    except OSError:  # removed while we looked
                        continue
                    count += 1
        return newest, count

    def refresh(self) -> bool:
        """Forget loaded campaigns if their files changed; True when it did."""
        signature = self._files_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        self._renderers.clear()
        self._too_slow.clear()
        self._slow_layout.clear()
        self._unready.clear()
        return True

    def renderer(self, slug: str) -> CampaignRenderer:
        if slug not in self._renderers:
            refused = self._unready.get(slug)
            if refused is not None:
                raise refused[0]
            campaign = load_campaign(self.campaigns_dir / slug)
            if self.vet is not None:
                try:
                    self.vet(campaign)
                except CampaignError as err:
                    self._unready[slug] = (err, campaign)
                    raise
            self._renderers[slug] = self._load_layout(slug, campaign)
        return self._renderers[slug]

    def _load_layout(self, slug: str, campaign: Campaign) -> CampaignRenderer:
        """The campaign's renderer, its layout compiled within the budget.

        Raises StepTooSlowError past it (remembered until the files change: every
        delivery of the campaign would wait that long again), a CampaignError for the
        campaign, so its deliveries are deferred like a broken file's.
        """
        slow = self._slow_layout.get(slug)
        if slow is not None:
            raise slow
        try:
            with time_budget(self.budget.seconds, "compiling the layout"):
                return CampaignRenderer(campaign, self.templates_dir)
        except RenderBudgetExceeded as err:
            path, line = layout_place(err, campaign, self.templates_dir)
            name = path.relative_to(self.templates_dir)
            error = StepTooSlowError(
                f"compiling {name} took longer than the render budget "
                f"({self.budget.seconds:g} s): a runaway expression in the template?",
                path=path,
                line=line,
            )
            self._slow_layout[slug] = error
            log.warning("campaign %s deferred until its files change: %s", slug, error)
            raise error from None

    def unready(self, slug: str) -> tuple[CampaignError, Campaign] | None:
        """Why ``vet`` refused campaign ``slug`` as its files are now (and the campaign), or
        None: it is ready, or it does not load at all (a broken file defers instead)."""
        with contextlib.suppress(DriplineError):  # a broken file: not our question here
            self.renderer(slug)
        return self._unready.get(slug)

    def campaign(self, slug: str) -> Campaign:
        return self.renderer(slug).campaign

    def definition(self, slug: str) -> Campaign:
        """The campaign as its files define it (its timetable and steps), whether or not
        its templates compile or ``vet`` accepts it. Raises CampaignError."""
        loaded = self._renderers.get(slug)
        return loaded.campaign if loaded is not None else load_campaign(self.campaigns_dir / slug)

    def step(
        self, slug: str, number: int, *, cancel: threading.Event | None = None
    ) -> CompiledStep:
        """The compiled step, within the budget.

        Raises CampaignError, StepTooSlowError, or RenderCancelled once ``cancel`` is set.
        """
        slow = self._too_slow.get((slug, number))
        if slow is not None:
            raise slow
        # The hot path: compiled already, so there is nothing to run under the budget.
        loaded = self._renderers.get(slug)
        if loaded is not None and number in loaded._compiled:
            return loaded._compiled[number]
        try:
            return self.budget.run(lambda: self.renderer(slug).step(number), cancel)
        except RenderCancelled:
            raise
        except BudgetExceeded as err:
            raise self._slow(slug, number, "compiling it", err) from None

    def step_by_id(
        self, slug: str, identity: str, *, cancel: threading.Event | None = None
    ) -> CompiledStep | None:
        """The compiled step with ``identity`` as the files have it now, or None if gone."""
        step = self.campaign(slug).step_by_id(identity)
        return None if step is None else self.step(slug, step.number, cancel=cancel)

    def step_variant(
        self, compiled: CompiledStep, index: int, *, cancel: threading.Event | None = None
    ) -> CompiledStep:
        """``compiled`` with its A/B subject variant ``index`` (0-based), within the budget.

        Raises CampaignError, StepTooSlowError, or RenderCancelled once ``cancel`` is set.
        """
        slug, number = compiled.campaign.slug, compiled.step.number
        if index == 0:
            return compiled
        loaded = self._renderers.get(slug)
        if loaded is not None and (number, index) in loaded._variants:
            return loaded._variants[(number, index)]
        try:
            return self.budget.run(lambda: self.renderer(slug).step_variant(number, index), cancel)
        except RenderCancelled:
            raise
        except BudgetExceeded as err:  # the variant differs from the step in its subject only
            at = line_of_key(compiled.step.path, "subjects")
            raise self._slow(
                slug, number, f"compiling subject variant {index + 1}", err, at
            ) from None

    def step_applies(
        self,
        compiled: CompiledStep,
        email: str,
        fields: dict[str, object],
        *,
        cancel: threading.Event | None = None,
    ) -> bool:
        """Whether the step's ``when`` is true for this subscriber
        (:func:`dripline.conditions.step_applies`), within the budget. True without one.

        Raises CampaignError (the expression fails for these values), StepTooSlowError
        (past the budget: the step is deferred until its files change), or RenderCancelled
        once ``cancel`` is set.
        """
        step = compiled.step
        if not step.when:
            return True  # the hot path: nothing to run under the budget
        slow = self._too_slow.get((compiled.campaign.slug, step.number))
        if slow is not None:
            raise slow
        try:
            return self.budget.run(lambda: step_applies(step, email, fields), cancel)
        except RenderCancelled:
            raise
        except BudgetExceeded:
            error = StepTooSlowError(
                f"evaluating when took longer than the render budget ({self.budget.seconds:g} s)",
                path=step.path,
                line=line_of_key(step.path, "when"),
            )
            self._too_slow[(compiled.campaign.slug, step.number)] = error
            log.warning("step deferred until its files change: %s", error)
            raise error from None

    def step_ids(self, slug: str) -> tuple[str, ...] | None:
        """The campaign's step identities, or None when it does not load."""
        try:
            return self.campaign(slug).step_ids
        except DriplineError:
            return None

    def render_bytes(
        self,
        compiled: CompiledStep,
        recipient: Recipient,
        *,
        cancel: threading.Event | None = None,
        **options: object,
    ) -> tuple[str, bytes]:
        """``compiled.render_bytes`` within the budget; raises StepTooSlowError past it
        (RenderCancelled once ``cancel`` is set)."""
        try:
            return self.budget.run(
                lambda: compiled.render_bytes(recipient, **options),  # type: ignore[arg-type]
                cancel,
            )
        except RenderCancelled:
            raise
        except BudgetExceeded as err:
            slug, number = compiled.campaign.slug, compiled.step.number
            raise self._slow(slug, number, "rendering a message", err) from None

    def _slow(
        self, slug: str, number: int, doing: str, err: BudgetExceeded, at: int | None = None
    ) -> StepTooSlowError:
        renderer = self.renderer(slug)
        step = renderer.campaign.step(number)
        position = runaway_position(err.stack)
        err.stack = []  # frames hold every local of the render
        path, line = renderer.runaway_place(step, position, renderer._compiled.get(number))
        error = StepTooSlowError(
            f"{doing} took longer than the render budget ({self.budget.seconds:g} s): "
            "a runaway loop in the template?",
            path=path,
            line=at or line,
        )
        self._too_slow[(slug, number)] = error
        log.warning("step deferred until its files change: %s", error)
        return error
