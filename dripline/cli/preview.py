"""``dripline preview [--port 8025] [--open]``: the live-reloading local inbox."""

from __future__ import annotations

import click

from ..errors import DriplineError
from . import settings_from

__all__ = ["preview_command"]


@click.command("preview")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8025,
    show_default=True,
    help="Port on 127.0.0.1 to serve on (0 picks a free one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in a browser.")
@click.pass_context
def preview_command(ctx: click.Context, port: int, open_browser: bool) -> None:
    """Serve every campaign as a local inbox that refreshes when you save a file."""
    from ..preview import PreviewServer  # starlette and uvicorn load only for this command

    settings = settings_from(ctx)
    if not settings.campaigns_dir.is_dir():
        raise DriplineError(f"no campaigns/ folder in {settings.root}")
    server = PreviewServer(
        settings.root,
        base_url=settings.base_url,
        port=port,
        open_browser=open_browser,
        database_url=settings.effective_database_url,
        render_budget=settings.render_budget,
    )
    count = len(server.project.snapshot.entries)
    click.echo(
        f"Previewing {count} campaign(s) at {server.url}\n"
        "Watching campaigns/ and templates/ for changes. Press Ctrl+C to stop."
    )
    server.run()
    click.echo("Preview stopped.")
