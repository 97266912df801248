"""The ``dripline`` command line.

Commands live in small modules of this package and are imported only when
invoked (the table below), so ``dripline --help`` stays fast and one command's
dependencies never slow another. User errors (:class:`DriplineError`) print
``Error: ...`` and exit 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .._keys import closest
from ..errors import DriplineError
from ..settings import Settings, load_settings

__all__ = ["main", "settings_from"]

# command name -> "module:attribute" inside dripline.cli
COMMANDS: dict[str, str] = {
    "apply": "plan:apply_command",
    "bounces": "bounces:bounces_command",
    "campaigns": "campaigns:campaigns_command",
    "check": "check:check_command",
    "db": "db:db_command",
    "demo": "demo:demo_command",
    "event": "event:event_command",
    "history": "history:history_command",
    "import": "importcsv:import_command",
    "import-article": "import_article:import_article_command",
    "plan": "plan:plan_command",
    "preview": "preview:preview_command",
    "render": "render:render_command",
    "report": "report:report_command",
    "requeue": "requeue:requeue_command",
    "run": "run:run_command",
    "send-test": "send_test:send_test_command",
    "serve": "serve:serve_command",
    "snapshot": "snapshot:snapshot_command",
    "status": "status:status_command",
    "subscribe": "subscribe:subscribe_command",
    "subscriber": "subscriber:subscriber_group",
    "suppress": "suppress:suppress_command",
    "timeline": "timeline:timeline_command",
    "unsubscribe": "unsubscribe:unsubscribe_command",
}


class DriplineGroup(click.Group):
    """Loads commands lazily and turns user errors into one clear line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(f"{__name__}.{module_name}")
        command: click.Command = getattr(module, attribute)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """A misspelt command is a usage error naming the closest ("did you mean 'send-test'?")."""
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            match = closest(name, COMMANDS)
            if match is not None:
                ctx.fail(f"No such command {name!r}; did you mean {match!r}?")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DriplineError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {err}", err=True)
            sys.exit(1)


@click.group(cls=DriplineGroup)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help="Project folder holding campaigns/ and templates/ (default: current folder, "
    "or DRIPLINE_ROOT).",
)
@click.option("--debug", is_flag=True, default=None, help="Show tracebacks for errors.")
@click.version_option(package_name="dripline")
@click.pass_context
def main(ctx: click.Context, root: str | None, debug: bool | None) -> None:
    """dripline: campaigns as code. Turn Markdown emails into a scheduled drip sequence."""
    ctx.ensure_object(dict)
    ctx.obj["flags"] = {"root": root, "debug": debug}
    ctx.obj["debug"] = bool(debug)


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    """Build the settings once for this command: file, then DRIPLINE_*, then flags."""
    root_ctx = ctx.find_root()
    merged = {**root_ctx.obj.get("flags", {}), **flags}
    settings = load_settings(flags=merged)
    root_ctx.obj["debug"] = settings.debug
    return settings
