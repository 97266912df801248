"""The Starlette application: routes, guards and the file watcher's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ._guard import LocalHostOnly, SecurityHeaders, local_hosts
from ._live import ReloadBroadcaster, watch_project
from ._pages import PageRenderer
from ._project import Project
from ._views import Views

__all__ = ["create_app"]


def create_app(
    project: Project,
    *,
    port: int,
    broadcaster: ReloadBroadcaster | None = None,
    watch: bool = True,
) -> Starlette:
    """The preview app for ``project``, answering only at ``127.0.0.1:port``/``localhost:port``.

    ``watch=False`` leaves reloading to the caller (``project.reload()``), for tests
    that want to decide exactly when a change is seen.
    """
    broadcaster = broadcaster or ReloadBroadcaster()
    views = Views(project, PageRenderer(project), broadcaster)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_project(project, broadcaster, stop)) if watch else None
        try:
            yield
        finally:
            stop.set()
            broadcaster.close()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    step = "/campaigns/{slug}/{number:int}"
    routes = [
        Route("/", views.index, name="index"),
        Route("/events", views.events, name="events"),
        Route("/campaigns/{slug}", views.campaign, name="campaign"),
        Route(step, views.step, name="step"),
        Route(step + "/email.html", views.email_document, name="email_document"),
        Route(step + "/message.eml", views.eml, name="eml"),
        Mount("/static", StaticFiles(packages=[("dripline.preview", "static")]), name="static"),
    ]
    middleware = [
        # Outermost first: a request from a foreign Host never reaches a route.
        Middleware(LocalHostOnly, allowed=local_hosts(port)),
        Middleware(SecurityHeaders),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: views.not_found},
    )
