"""``dripline preview``: a live-reloading local inbox for every campaign.

A Starlette app, served by uvicorn on 127.0.0.1 only, that shows each campaign's
timeline and each email as the code path that sends it renders it, for every
sample subscriber, and refreshes open pages when a campaign or template changes.
It has no sender: nothing here can send mail.
"""

from __future__ import annotations

from ._app import create_app, local_hosts
from ._message import EMAIL_CSP, force_color_scheme
from ._project import Project
from ._server import PreviewServer
from ._timeline import PlannedSend, plan_sends, timeline_svg

__all__ = [
    "EMAIL_CSP",
    "PlannedSend",
    "PreviewServer",
    "Project",
    "create_app",
    "force_color_scheme",
    "local_hosts",
    "plan_sends",
    "timeline_svg",
]
