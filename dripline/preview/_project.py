"""The project as the preview sees it: every campaign loaded once per change, renders cached.

A :class:`Snapshot` is immutable input (the campaigns, their renderers and sample
subscribers as the files stood at one moment) plus caches of what was rendered
and linted from it. A file change builds a new snapshot and swaps it in whole, so
a request never mixes an old campaign with a new template. Loading is cheap
(milliseconds); rendering and linting happen when a page asks for them.

Everything renders through :meth:`CompiledStep.render`, the code path sending
uses, so the preview shows the bytes that would be sent.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from markupsafe import Markup

from .._budget import DEFAULT_RENDER_BUDGET
from ..campaign import Campaign, campaign_slugs, load_campaign
from ..errors import DriplineError
from ..lint import Finding, guard_findings, lint_step
from ..plan import CampaignPlan, campaign_state, plan_campaign
from ..preflight import SpamReport, spam_reports, spamassassin_path
from ..render import CampaignRenderer, RenderedEmail
from ..results import campaign_report, report_body
from ..samples import Sample, load_samples
from ..store import current_revision, head_revision, make_engine
from ._timeline import PlannedSend, plan_sends

__all__ = ["CampaignEntry", "Project", "Snapshot", "SpamScore"]

_MAX_CACHED_EMAILS = 256
_SPAM_CACHE: OrderedDict[str, SpamReport] = OrderedDict()
_SPAM_LOCK = threading.Lock()
_PER_RENDER = re.compile(rb"^(Message-ID|Date):[^\r\n]*\r?\n", re.I | re.M)


def _content_key(data: bytes) -> str:
    """A digest of a message without the headers that change on every render."""
    return hashlib.sha256(_PER_RENDER.sub(b"", data)).hexdigest()


@dataclass
class CampaignEntry:
    """One campaign folder: loaded, or the error that stopped it loading."""

    slug: str
    campaign: Campaign | None = None
    renderer: CampaignRenderer | None = None
    samples: list[Sample] = field(default_factory=list)
    error: DriplineError | None = None


def _load_entry(
    folder: Path, templates_dir: Path, base_url: str, render_budget: float | None
) -> CampaignEntry:
    entry = CampaignEntry(folder.name)
    try:
        entry.campaign = load_campaign(folder)
        entry.samples = load_samples(entry.campaign, base_url)
        # A runaway template must not hold a preview page (and its server thread) forever.
        entry.renderer = CampaignRenderer(
            entry.campaign, templates_dir, render_budget=render_budget
        )
    except DriplineError as err:
        entry.error = err
    return entry


@dataclass(frozen=True)
class SpamScore:
    """What the step page says about spam: a report, or why there is none."""

    report: SpamReport | None = None
    threshold: float = 5.0
    problem: str = ""  # SpamAssassin missing or failing
    missing: bool = False  # not installed (the page then says how to install it)

    @property
    def severity(self) -> str:
        if self.report is None:
            return "info"
        if self.report.score > self.threshold:
            return "error"
        return "warning" if self.report.score > self.threshold / 2 else "ok"


class Snapshot:
    """Campaigns as loaded at one generation, with per-generation render and lint caches."""

    def __init__(
        self, generation: int, entries: dict[str, CampaignEntry], instance: str = ""
    ) -> None:
        self.generation = generation
        # Pages compare versions to know they are stale; the server instance is part of it
        # so a page from before a restart refreshes even when generation numbers repeat.
        self.version = f"{instance}-{generation}" if instance else str(generation)
        self.entries = entries
        self._lock = threading.Lock()
        self._emails: OrderedDict[tuple[str, int, int, datetime], RenderedEmail] = OrderedDict()
        self._findings: dict[tuple[str, int], list[Finding]] = {}

    def entry(self, slug: str) -> CampaignEntry | None:
        return self.entries.get(slug)

    def render(
        self, entry: CampaignEntry, number: int, sample_index: int, when: datetime
    ) -> RenderedEmail:
        """The message ``sample_index`` would get for step ``number``, dated ``when``.

        Cached so the page, its iframe and the ``.eml`` download show one message
        (one Message-ID) until a file changes.
        """
        key = (entry.slug, number, sample_index, when)
        with self._lock:
            cached = self._emails.get(key)
            if cached is not None:
                self._emails.move_to_end(key)
                return cached
            assert entry.renderer is not None
            compiled = entry.renderer.step(number)
            email = compiled.render(entry.samples[sample_index].recipient, now=when)
            self._emails[key] = email
            if len(self._emails) > _MAX_CACHED_EMAILS:
                self._emails.popitem(last=False)
            return email

    def step_findings(self, entry: CampaignEntry, number: int) -> list[Finding]:
        """What ``dripline check`` reports for this step (the same function does the work)."""
        key = (entry.slug, number)
        with self._lock:
            if key not in self._findings:
                assert entry.renderer is not None
                try:
                    compiled = entry.renderer.step(number)
                except DriplineError as err:
                    found = [Finding("error", err.message, err.path, err.line, number)]
                else:
                    fields = {k for s in entry.samples for k in s.recipient.fields}
                    found = lint_step(compiled, entry.samples, fields)
                self._findings[key] = found
            return self._findings[key]

    def spam_score(
        self, entry: CampaignEntry, number: int, sample_index: int, when: datetime
    ) -> SpamScore:
        """SpamAssassin's score of the message :meth:`render` gives.

        Cached by the message's content (Message-ID and Date aside) across snapshots:
        saving one file re-scores only the emails it changed.
        """
        assert entry.campaign is not None
        threshold = entry.campaign.lint.spam_threshold
        if spamassassin_path() is None:
            return SpamScore(
                threshold=threshold, problem="SpamAssassin is not installed", missing=True
            )
        email = self.render(entry, number, sample_index, when)
        key = _content_key(email.data)
        with _SPAM_LOCK:
            report = _SPAM_CACHE.get(key)
        if report is None:
            try:
                report = spam_reports([email.data])[0]
            except DriplineError as err:
                return SpamScore(threshold=threshold, problem=str(err))
            with _SPAM_LOCK:
                _SPAM_CACHE[key] = report
                while len(_SPAM_CACHE) > _MAX_CACHED_EMAILS:
                    _SPAM_CACHE.popitem(last=False)
        return SpamScore(report, threshold)

    def campaign_findings(self, entry: CampaignEntry) -> list[Finding]:
        """Every finding of the campaign: its load error, or each step's findings."""
        if entry.error is not None:
            err = entry.error
            return [Finding("error", err.message, err.path, err.line)]
        assert entry.campaign is not None
        found = guard_findings(entry.campaign)
        for step in entry.campaign.steps:
            found += self.step_findings(entry, step.number)
        return found


class Project:
    """The campaigns/ and templates/ folders, reloaded as a whole on every change."""

    def __init__(
        self,
        root: Path,
        *,
        base_url: str,
        clock: Callable[[], datetime] | None = None,
        database_url: str | None = None,
        render_budget: float | None = DEFAULT_RENDER_BUDGET,
    ) -> None:
        self.root = root
        self.database_url = database_url
        # Seconds a render or compile may take (DRIPLINE_RENDER_BUDGET): a page waits no longer.
        self.render_budget = render_budget
        self.campaigns_dir = root / "campaigns"
        self.templates_dir = root / "templates"
        self.base_url = base_url
        self._clock = clock or (lambda: datetime.now(UTC))
        self._reload_lock = threading.Lock()
        self.instance = uuid.uuid4().hex[:8]
        self._snapshot = self._build(1)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def _build(self, generation: int) -> Snapshot:
        entries = {
            slug: _load_entry(
                self.campaigns_dir / slug, self.templates_dir, self.base_url, self.render_budget
            )
            for slug in campaign_slugs(self.campaigns_dir)
        }
        return Snapshot(generation, entries, self.instance)

    def reload(self) -> Snapshot:
        """Re-read every campaign and template; the new snapshot replaces the old one whole."""
        with self._reload_lock:
            self._snapshot = self._build(self._snapshot.generation + 1)
            return self._snapshot

    def enrolled_now(self) -> datetime:
        """The sample enrollment moment: now, to the minute (so renders can be cached)."""
        return self._clock().astimezone(UTC).replace(second=0, microsecond=0)

    def plan(self, campaign: Campaign) -> list[PlannedSend]:
        return plan_sends(campaign, self.enrolled_now())

    def live_plan(self, campaign: Campaign) -> CampaignPlan | None:
        """The pending plan for people already in ``campaign``, or None when the database
        has none (no database, an older schema, or no active enrollment). Read only: the
        preview never creates or migrates a database."""
        url = self.database_url
        if not url:
            return None
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            return None
        engine = make_engine(url)
        try:
            if current_revision(engine) != head_revision():
                return None
            state = campaign_state(
                campaign, self.templates_dir, self.base_url, render_budget=self.render_budget
            )
            plan = plan_campaign(engine, campaign.slug, state, self._clock())
        except DriplineError:
            return None
        finally:
            engine.dispose()
        return plan if plan.live_enrollments else None

    def live_results(self, campaign: Campaign) -> Markup | None:
        """The results section (``dripline report``'s numbers, charts as images) for a
        campaign with live enrollments in the database; None otherwise. Read only."""
        url = self.database_url
        if not url:
            return None
        engine = make_engine(url)
        try:
            if current_revision(engine) != head_revision():
                return None
            report = campaign_report(engine, campaign, now=self._clock())
        except DriplineError:
            return None
        finally:
            engine.dispose()
        # The page's CSP allows no inline styles; an SVG shown as an image keeps its own.
        return report_body(report, inline_svg=False) if report.results.enrolled else None

    def relative(self, path: Path | None) -> str:
        """A path as the user knows it: relative to the project root when it is inside."""
        if path is None:
            return ""
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def where(self, err: DriplineError | Finding) -> str:
        """``campaigns/x/01-a.md:12``: the file and line an error points at."""
        place = self.relative(err.path)
        if place and err.line:
            place += f":{err.line}"
        return place
