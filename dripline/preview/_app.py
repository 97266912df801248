"""The Starlette application: routes, guards and the file watcher's lifetime.

Guards: the preview listens on 127.0.0.1 only, but a web page on the internet can still
make a browser talk to it through DNS rebinding (``evil.example`` re-resolving
to 127.0.0.1). Such requests carry the attacker's name in ``Host``, so anything
that is not ``127.0.0.1:PORT`` or ``localhost:PORT`` is refused with 403.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._live import ReloadBroadcaster, watch_project
from ._project import Project
from ._views import PageRenderer, Views

__all__ = ["PAGE_CSP", "create_app", "local_hosts"]

# The preview's own pages: scripts and styles from our /static only, no inline code.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


def local_hosts(port: int) -> frozenset[str]:
    """``Host`` values a browser sends for this server (the port is omitted only for 80)."""
    names = {f"127.0.0.1:{port}", f"localhost:{port}"}
    if port == 80:
        names |= {"127.0.0.1", "localhost"}
    return frozenset(names)


class LocalHostOnly:
    """ASGI middleware: 403 for any request whose ``Host`` is not one of ``allowed``."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(host.lower() for host in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = ""
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value.decode("latin-1").strip().lower()
                    break
            if host not in self.allowed:
                served = sorted(self.allowed)[0]
                response = PlainTextResponse(
                    f"403 Forbidden: this preview only answers at http://{served}/\n",
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: defaults every response gets unless the route set its own."""

    DEFAULTS = (
        ("Content-Security-Policy", PAGE_CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.DEFAULTS:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
        Route(step + "/spam", views.spam, name="spam"),
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
