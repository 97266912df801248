"""``dripline serve [--host 127.0.0.1] [--port 8000]``: sign-up forms and unsubscribe links."""

from __future__ import annotations

import logging

import click

from .._listen import listen_socket
from ..settings import Settings, redact_url
from . import settings_from
from ._sending import allow_local_links_option
from ._store import db_option

__all__ = ["serve_command"]


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@allow_local_links_option
@db_option
@click.pass_context
def serve_command(
    ctx: click.Context,
    host: str,
    port: int,
    allow_local_links: bool | None,
    database_url: str | None,
) -> None:
    """Serve /subscribe/SLUG, /confirm/TOKEN and /u/TOKEN (needs DRIPLINE_SECRET_KEY),
    tracked links /c/TOKEN and /o/TOKEN, and POST /api/events (with DRIPLINE_API_TOKEN).

    Links in emails point at DRIPLINE_BASE_URL; put a TLS proxy in front for the public.
    """
    import uvicorn  # here, so other commands never pay for it

    from ..serve import create_app

    settings = settings_from(ctx, database_url=database_url, allow_local_links=allow_local_links)
    app = create_app(settings)  # refuses (Error: ...) before anything listens
    # Bound before "Serving ..." is printed: a busy port is one line and exit 1.
    sock = listen_socket(
        host, port, busy_hint="is another dripline serve running? choose another --port"
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    click.echo(
        f"Serving {len(app.state.service.campaigns)} campaign(s) on http://{host}:{port} "
        f"(links use {settings.base_url}; database {redact_url(settings.effective_database_url)})"
    )
    if settings.base_url == Settings().base_url and port != 8000:
        click.echo(
            f"Warning: DRIPLINE_BASE_URL is not set, so links in emails point at "
            f"{settings.base_url}, not at port {port}",
            err=True,
        )
    # No access log: request paths hold tokens, which must not end up in logs.
    config = uvicorn.Config(app, access_log=False, proxy_headers=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
