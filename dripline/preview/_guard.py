"""Request guards: answer only to our own local address, and send strict headers.

The preview listens on 127.0.0.1 only, but a web page on the internet can still
make a browser talk to it through DNS rebinding (``evil.example`` re-resolving
to 127.0.0.1). Such requests carry the attacker's name in ``Host``, so anything
that is not ``127.0.0.1:PORT`` or ``localhost:PORT`` is refused with 403.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PAGE_CSP", "LocalHostOnly", "SecurityHeaders", "local_hosts"]

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
