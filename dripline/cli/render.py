"""``dripline render SLUG --out DIR``: each step as .html, .txt and .eml for a sample subscriber."""

from __future__ import annotations

from pathlib import Path

import click

from ..campaign import load_campaign
from ..errors import DriplineError
from ..render import CampaignRenderer
from ..samples import load_samples, recipient_from_json
from . import settings_from
from ._store import campaign_folder

__all__ = ["render_command"]


@click.command("render")
@click.argument("slug")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write NN-step.html, .txt and .eml into (created if missing).",
)
@click.option(
    "--subscriber",
    "subscriber_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON object with email, name, first_name and any attributes (default: the "
    "campaign's first sample subscriber).",
)
@click.pass_context
def render_command(
    ctx: click.Context, slug: str, out_dir: Path, subscriber_file: Path | None
) -> None:
    """Render every step of SLUG for one subscriber into files you can open."""
    settings = settings_from(ctx)
    campaign = load_campaign(campaign_folder(settings, slug))
    renderer = CampaignRenderer(
        campaign, settings.templates_dir, render_budget=settings.render_budget
    )
    if subscriber_file is not None:
        recipient = recipient_from_json(subscriber_file, campaign, settings.base_url)
    else:
        recipient = load_samples(campaign, settings.base_url)[0].recipient
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DriplineError(f"cannot create the folder: {err.strerror}", path=out_dir) from err
    for step in campaign.steps:
        email = renderer.step(step.number).render(recipient)
        (out_dir / f"{step.name}.html").write_text(email.html, encoding="utf-8")
        (out_dir / f"{step.name}.txt").write_text(email.text, encoding="utf-8")
        (out_dir / f"{step.name}.eml").write_bytes(email.data)
        click.echo(f"{step.name}: {email.subject}")
    click.echo(
        f"Wrote {len(campaign.steps)} emails (.html, .txt, .eml) for {recipient.email} to {out_dir}"
    )
