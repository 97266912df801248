"""The preview's routes: start page, campaign page, step page, the email document, .eml, events.

Pages are server-rendered from the preview's own templates (``dripline/preview/
pages``, not the email layouts under the project's ``templates/``); they
autoescape everything, since campaign text is shown in them.

Each request takes the current :class:`Snapshot` once and renders everything from
it. A campaign or step that fails to load or render answers with a page that
shows the error (file and line) instead: the page keeps listening for changes
and comes back when the file is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from ..errors import DriplineError
from ..preflight import gaps_by_client, target_clients
from ..render import RenderedEmail
from ._live import ReloadBroadcaster, event_stream
from ._message import EMAIL_CSP, SCHEMES, force_color_scheme, message_parts
from ._project import CampaignEntry, Project, Snapshot
from ._timeline import PlannedSend, sample_steps, timeline_svg

__all__ = ["PageRenderer", "StepOptions", "Views", "format_due", "weekday_names"]

_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def format_due(when: datetime) -> str:
    """``Mon 9 Mar 2026, 09:00 PDT``: how the pages name a send time."""
    return f"{when:%a} {when.day} {when:%b %Y, %H:%M %Z}"


def weekday_names(days: tuple[int, ...]) -> str:
    """``Monday to Friday`` for a run of days, else the days listed."""
    if len(days) > 2 and list(days) == list(range(days[0], days[-1] + 1)):
        return f"{_WEEKDAY_NAMES[days[0]]} to {_WEEKDAY_NAMES[days[-1]]}"
    return ", ".join(_WEEKDAY_NAMES[d] for d in days)


class PageRenderer:
    """Renders a page template with what every page needs (snapshot version, project paths)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.env = Environment(
            loader=PackageLoader("dripline.preview", "pages"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            format_due=format_due,
            weekday_names=weekday_names,
            where=project.where,
        )

    def page(
        self, request: Request, name: str, *, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        version = context.pop("version", self.project.snapshot.version)
        html = self.env.get_template(name).render(request=request, version=version, **context)
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


WIDTHS = (375, 800)  # phone, desktop
VIEWS = ("html", "text", "headers", "source")


def _choice(raw: str | None, allowed: tuple[Any, ...], convert: type = str) -> Any:
    try:
        value = convert(raw) if raw is not None else allowed[0]
    except ValueError:
        return allowed[0]
    return value if value in allowed else allowed[0]


@dataclass(frozen=True)
class StepOptions:
    """How the step page shows a message; every choice lives in the URL, so it survives reloads."""

    sample: int = 0
    width: int = WIDTHS[0]
    scheme: str = SCHEMES[0]
    view: str = VIEWS[0]

    @classmethod
    def from_request(cls, request: Request, samples: int) -> StepOptions:
        query = request.query_params
        sample = _choice(query.get("sample"), tuple(range(max(samples, 1))), int)
        return cls(
            sample=sample,
            width=_choice(query.get("width"), WIDTHS, int),
            scheme=_choice(query.get("scheme"), SCHEMES),
            view=_choice(query.get("view"), VIEWS),
        )

    def query(self, **changes: Any) -> str:
        chosen = replace(self, **changes)
        return "?" + urlencode(
            {
                "sample": chosen.sample,
                "width": chosen.width,
                "scheme": chosen.scheme,
                "view": chosen.view,
            }
        )


class Views:
    """Request handlers bound to one project, page renderer and reload broadcaster."""

    def __init__(
        self, project: Project, pages: PageRenderer, broadcaster: ReloadBroadcaster
    ) -> None:
        self.project = project
        self.pages = pages
        self.broadcaster = broadcaster

    # -- lookups -------------------------------------------------------------------------

    def _entry(self, snapshot: Snapshot, request: Request) -> CampaignEntry:
        entry = snapshot.entry(request.path_params["slug"])
        if entry is None:
            raise HTTPException(404, "No such campaign")
        return entry

    def _number(self, entry: CampaignEntry, request: Request) -> int:
        number: int = request.path_params["number"]
        if entry.campaign is not None and not 1 <= number <= len(entry.campaign.steps):
            raise HTTPException(404, "No such step")
        return number

    def _broken(self, request: Request, snapshot: Snapshot, entry: CampaignEntry) -> Response:
        return self.pages.page(
            request,
            "broken.html",
            version=snapshot.version,
            entry=entry,
            error=entry.error,
        )

    # -- pages ---------------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        snapshot = self.project.snapshot
        rows = []
        for entry in snapshot.entries.values():
            findings = snapshot.campaign_findings(entry)
            errors = [f for f in findings if f.severity == "error"]
            rows.append({"entry": entry, "errors": errors, "warnings": len(findings) - len(errors)})
        return self.pages.page(request, "index.html", version=snapshot.version, rows=rows)

    def campaign(self, request: Request) -> Response:
        snapshot = self.project.snapshot
        entry = self._entry(snapshot, request)
        if entry.error is not None or entry.campaign is None:
            return self._broken(request, snapshot, entry)
        planned = self.project.plan(entry.campaign)
        live = self.project.live_plan(entry.campaign)
        # The inbox as the first sample subscriber sees it: subjects may use their fields.
        inbox = []
        for send in planned:
            try:
                email = snapshot.render(entry, send.step.number, 0, send.due)
                subject, problem = email.subject, None
            except DriplineError as err:
                subject, problem = send.step.subject, err
            inbox.append({"send": send, "subject": subject, "problem": problem})
        return self.pages.page(
            request,
            "campaign.html",
            version=snapshot.version,
            entry=entry,
            campaign=entry.campaign,
            planned=planned,
            inbox=inbox,
            enrolled=self.project.enrolled_now().astimezone(entry.campaign.schedule.zone),
            timeline=timeline_svg(entry.campaign, planned),
            # Only campaigns with conditional steps get the who-gets-what table.
            who_gets=(
                sample_steps(entry.campaign, entry.samples)
                if any(step.when for step in entry.campaign.steps)
                else []
            ),
            live=live,
            results=self.project.live_results(entry.campaign) if live else None,
        )

    def step(self, request: Request) -> Response:
        snapshot = self.project.snapshot
        entry = self._entry(snapshot, request)
        number = self._number(entry, request)
        if entry.error is not None or entry.campaign is None:
            return self._broken(request, snapshot, entry)
        campaign = entry.campaign
        options = StepOptions.from_request(request, len(entry.samples))
        send = self.project.plan(campaign)[number - 1]
        email = error = None
        try:
            email = snapshot.render(entry, number, options.sample, send.due)
        except DriplineError as err:
            error = err
        parts = message_parts(email.data) if email is not None else None
        findings = snapshot.step_findings(entry, number)
        preflight = ("client-support", "a11y-")
        base = f"/campaigns/{campaign.slug}"
        return self.pages.page(
            request,
            "step.html",
            version=snapshot.version,
            entry=entry,
            campaign=campaign,
            step=send.step,
            send=send,
            email=email,
            error=error,
            parts=parts,
            options=options,
            samples=entry.samples,
            widths=WIDTHS,
            schemes=SCHEMES,
            findings=[f for f in findings if not f.rule.startswith(preflight)],
            client_gaps=gaps_by_client(findings),
            target_clients=target_clients(campaign),
            accessibility=[f for f in findings if f.rule.startswith("a11y-")],
            step_url=f"{base}/{number}",
            previous_url=f"{base}/{number - 1}{options.query()}" if number > 1 else None,
            next_url=(
                f"{base}/{number + 1}{options.query()}" if number < len(campaign.steps) else None
            ),
        )

    # -- the message itself ----------------------------------------------------------------

    def _step(
        self, request: Request
    ) -> tuple[Snapshot, CampaignEntry, int, StepOptions, PlannedSend]:
        """The project snapshot, campaign entry, step number, options and due time a step
        page's message is made from (409 when the campaign does not load)."""
        snapshot = self.project.snapshot
        entry = self._entry(snapshot, request)
        number = self._number(entry, request)
        if entry.error is not None or entry.campaign is None:
            raise HTTPException(409, f"The campaign does not load: {entry.error}")
        options = StepOptions.from_request(request, len(entry.samples))
        send = self.project.plan(entry.campaign)[number - 1]
        return snapshot, entry, number, options, send

    def _email(self, request: Request) -> tuple[RenderedEmail, StepOptions]:
        snapshot, entry, number, options, send = self._step(request)
        try:
            email = snapshot.render(entry, number, options.sample, send.due)
        except DriplineError as err:
            raise HTTPException(409, f"The email does not render: {err}") from err
        return email, options

    def spam(self, request: Request) -> Response:
        """SpamAssassin's score of the message the step page shows (fetched by preview.js)."""
        snapshot, entry, number, options, send = self._step(request)
        try:
            spam = snapshot.spam_score(entry, number, options.sample, send.due)
        except DriplineError as err:
            raise HTTPException(409, f"The email does not render: {err}") from err
        return self.pages.page(
            request,
            "spam.html",
            version=snapshot.version,
            campaign=entry.campaign,
            step=send.step,
            sample=entry.samples[options.sample],
            spam=spam,
            step_url=f"/campaigns/{entry.campaign.slug}/{number}{options.query()}",
        )

    def email_document(self, request: Request) -> Response:
        """The HTML part as its own document, for the step page's sandboxed iframe."""
        email, options = self._email(request)
        return HTMLResponse(
            force_color_scheme(email.html, options.scheme),
            headers={"Content-Security-Policy": EMAIL_CSP, "Cache-Control": "no-store"},
        )

    def eml(self, request: Request) -> Response:
        """The exact message bytes, as a file a mail client opens."""
        email, _ = self._email(request)
        return Response(
            email.data,
            media_type="message/rfc822",
            headers={
                "Content-Disposition": f'attachment; filename="{email.step.name}.eml"',
                "Cache-Control": "no-store",
            },
        )

    async def events(self, request: Request) -> Response:
        return StreamingResponse(
            event_stream(self.project, self.broadcaster),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store"},
        )

    async def not_found(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "Internal error"
        return self.pages.page(
            request, "not_found.html", status_code=status, status=status, detail=detail
        )
