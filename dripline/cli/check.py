"""``dripline check [SLUG]``: load every campaign, lint every email; exit 1 on any error.

``--spam`` also scores every message with SpamAssassin; ``--json`` prints every
finding as one JSON array (keys documented in docs/preflight.md) instead of lines.
"""

from __future__ import annotations

import json

import click

from ..campaign import Campaign, campaign_slugs
from ..errors import DriplineError
from ..findings import Finding
from ..lint import lint_folder
from ..preflight import campaign_spam_findings, spamassassin_path
from ..settings import Settings
from . import settings_from
from ._store import campaign_folder

__all__ = ["check_command"]


@click.command("check")
@click.argument("slug", required=False)
@click.option(
    "--spam",
    is_flag=True,
    help="Also score every email with SpamAssassin (local tests) against [lint] spam_threshold.",
)
@click.option("--json", "as_json", is_flag=True, help="Print every finding as a JSON array.")
@click.pass_context
def check_command(ctx: click.Context, slug: str | None, spam: bool, as_json: bool) -> None:
    """Load campaigns and lint every rendered email (all campaigns, or SLUG)."""
    settings = settings_from(ctx)
    missing = None
    if spam and spamassassin_path() is None:
        missing = (
            "--spam needs SpamAssassin, which is not installed "
            "(apt-get install --no-install-recommends spamassassin)"
        )
        if not as_json:
            raise DriplineError(missing)
    slugs = [slug] if slug else campaign_slugs(settings.campaigns_dir)
    problem = ""
    if not slugs:
        problem = f"no campaigns under {settings.campaigns_dir}"
    elif slug:
        try:
            campaign_folder(settings, slug)  # an unknown slug: the campaigns, closest first
        except DriplineError as err:
            problem = err.message
    if problem:
        if as_json:
            click.echo("[]")  # stdout stays JSON for CI; the error goes to stderr
        raise DriplineError(problem)
    errors = 0
    objects: list[dict] = []
    for name in slugs:
        folder = campaign_folder(settings, name)
        campaign, findings = lint_folder(
            folder, settings.templates_dir, settings.base_url, render_budget=settings.render_budget
        )
        if spam and campaign is not None:
            findings += _spam_findings(campaign, settings, missing)
        campaign_errors = sum(f.severity == "error" for f in findings)
        errors += campaign_errors
        if as_json:
            objects += [finding.as_json(name) for finding in findings]
            continue
        _print(name, campaign.steps if campaign else None, findings, campaign_errors)
    if as_json:
        # Always a JSON array on stdout, so CI can parse it even when SpamAssassin is missing.
        click.echo(json.dumps(objects, indent=2, ensure_ascii=False))
        if missing:
            click.echo(f"Error: {missing}", err=True)
    if errors:
        ctx.exit(1)


def _spam_findings(campaign: Campaign, settings: Settings, missing: str | None) -> list[Finding]:
    """The campaign's spam scores; SpamAssassin missing or failing is an error finding of the
    campaign, so its lint results (and the other campaigns') are still reported."""
    try:
        if missing:
            raise DriplineError(missing)
        return campaign_spam_findings(campaign, settings.templates_dir, settings.base_url)
    except DriplineError as err:
        message = f"no spam score: {err}"
        return [Finding("error", message, campaign.toml_path, None, None, "spam-score")]


def _print(name: str, steps: tuple | None, findings: list[Finding], errors: int) -> None:
    for finding in findings:
        click.echo(str(finding), err=finding.severity == "error")
    warnings = sum(f.severity == "warning" for f in findings)
    emails = f"{len(steps)} emails" if steps is not None else "not loaded"
    status = "ok" if not errors else "FAILED"
    click.echo(f"{name}: {emails}, {errors} error(s), {warnings} warning(s): {status}")
