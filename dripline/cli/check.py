"""``dripline check [SLUG]``: load every campaign, lint every email; exit 1 on any error."""

from __future__ import annotations

import click

from ..campaign import campaign_slugs
from ..errors import DriplineError
from ..lint import lint_folder
from . import settings_from
from ._store import campaign_folder

__all__ = ["check_command"]


@click.command("check")
@click.argument("slug", required=False)
@click.pass_context
def check_command(ctx: click.Context, slug: str | None) -> None:
    """Load campaigns and lint every rendered email (all campaigns, or SLUG)."""
    settings = settings_from(ctx)
    slugs = [slug] if slug else campaign_slugs(settings.campaigns_dir)
    if not slugs:
        raise DriplineError(f"no campaigns under {settings.campaigns_dir}")
    errors = warnings = 0
    for name in slugs:
        folder = campaign_folder(settings, name)
        campaign, findings = lint_folder(
            folder, settings.templates_dir, settings.base_url, render_budget=settings.render_budget
        )
        for finding in findings:
            click.echo(str(finding), err=finding.severity == "error")
        campaign_errors = sum(f.severity == "error" for f in findings)
        errors += campaign_errors
        warnings += len(findings) - campaign_errors
        steps = f"{len(campaign.steps)} emails" if campaign else "not loaded"
        status = "ok" if not campaign_errors else "FAILED"
        click.echo(
            f"{name}: {steps}, {campaign_errors} error(s), "
            f"{len(findings) - campaign_errors} warning(s): {status}"
        )
    if errors:
        ctx.exit(1)
