"""Server-rendered pages: one Jinja environment for the preview's own HTML, and its helpers.

These templates are the preview's user interface (``dripline/preview/pages``),
not the email layouts under the project's ``templates/``; they autoescape
everything, since campaign text is shown in them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..campaign import WEEKDAYS
from ._project import Project

__all__ = ["PageRenderer", "format_due", "weekday_names"]

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
    """Renders a page template with what every page needs (generation, project paths)."""

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
            WEEKDAYS=WEEKDAYS,
        )

    def page(
        self, request: Request, name: str, *, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        generation = context.pop("generation", self.project.snapshot.generation)
        html = self.env.get_template(name).render(request=request, generation=generation, **context)
        return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})
