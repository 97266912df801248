"""``dripline send-test SLUG [--step N] --to ADDRESS``: one real message through the sender."""

from __future__ import annotations

import click

from sender import OutgoingMessage, SendError

from ..errors import DriplineError
from ..render import CampaignRenderer
from ..runtime import check_ready_to_send, sender_for
from ..samples import load_samples
from ..store import normalize_email
from . import settings_from
from ._options import option_value
from ._sending import allow_local_links_option
from ._store import load_campaign_by_slug

__all__ = ["send_test_command"]


@click.command("send-test")
@click.argument("slug")
@click.option("--step", "number", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--to", "to_address", required=True, help="Where to send the test message.")
@click.option(
    "--sender",
    "sender_url",
    metavar="URL",
    help="Sender URL (default: DRIPLINE_SENDER, else maildir:outbox).",
)
@allow_local_links_option
@click.pass_context
def send_test_command(
    ctx: click.Context,
    slug: str,
    number: int,
    to_address: str,
    sender_url: str | None,
    allow_local_links: bool | None,
) -> None:
    """Render a step with sample data and send it to ADDRESS, printing the server's reply."""
    settings = settings_from(ctx, sender_url=sender_url, allow_local_links=allow_local_links)
    campaign = load_campaign_by_slug(settings, slug)
    check_ready_to_send(settings, campaigns=False)
    with option_value("--to"):
        to_address = str(normalize_email(to_address))
    sample = load_samples(campaign, settings.base_url, settings.secret_key)[0].recipient
    recipient = type(sample)(to_address, sample.fields, sample.unsubscribe_url)
    compiled = CampaignRenderer(
        campaign, settings.templates_dir, render_budget=settings.render_budget
    ).step(number)
    email = compiled.render(recipient)
    message = OutgoingMessage(
        envelope_from=campaign.from_address,
        recipients=(to_address,),
        data=email.data,
        message_id=email.message_id,
    )
    with sender_for(settings) as sender:
        click.echo(
            f"Sending step {number} ({email.subject!r}) to {to_address} via {sender.display_url}"
        )
        try:
            result = sender.send(message)
        except SendError as err:
            raise DriplineError(f"not accepted: {err.reply}") from err
    click.echo(f"Accepted: {result.reply}")
    if result.queue_id:
        click.echo(f"Queue id: {result.queue_id}")
