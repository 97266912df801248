"""``dripline bounces process|list|show|undo``: bounces and complaints after the session.

``process`` reads a bounce mailbox (``--maildir DIR`` or ``--imap imaps://USER@HOST/FOLDER``
with ``DRIPLINE_IMAP_PASSWORD``); ``list``/``show`` let someone review each decision and
``undo`` reverses one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from ..errors import DriplineError
from ..runtime import bounce_policy_for
from ..store import (
    get_bounce,
    list_bounces,
    parse_moment,
    undo_bounce,
)
from ..tokens import TokenSigner
from . import settings_from
from ._store import db_option, open_settings_store

__all__ = ["bounces_command"]

# Control characters a terminal would obey (ESC sequences can rewrite the screen or the
# window title): a report's text is the sender's, so it is shown escaped. Tab and line
# breaks stay.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if chr(c) not in "\t\n\r"}


def _shown(text: str) -> str:
    return text.translate(_CONTROL)


@click.group("bounces")
def bounces_command() -> None:
    """Process a bounce mailbox; review and undo what it decided."""


@bounces_command.command("process")
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A Maildir holding the bounces.",
)
@click.option("--imap", "imap_url", default=None, metavar="URL", help="imaps://USER@HOST/FOLDER")
@click.option("--move-to", default=None, metavar="FOLDER", help="Where processed mail goes.")
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@db_option
@click.pass_context
def process_command(
    ctx: click.Context,
    maildir: Path | None,
    imap_url: str | None,
    move_to: str | None,
    dry_run: bool,
    database_url: str | None,
) -> None:
    """Record every bounce and complaint in the mailbox; leave all other mail alone."""
    from ..bounces import ImapMailbox, MaildirMailbox, parse_imap_url, process_mailbox

    settings = settings_from(ctx, database_url=database_url)
    if (maildir is None) == (imap_url is None):
        raise DriplineError("give exactly one of --maildir DIR or --imap URL")
    signer = TokenSigner(settings.secret_key) if settings.secret_key else None
    if settings.return_path and signer is None:
        raise DriplineError("DRIPLINE_RETURN_PATH is set but DRIPLINE_SECRET_KEY is not")
    if imap_url is not None:
        box = ImapMailbox(parse_imap_url(imap_url), settings.imap_password, move_to)
    else:
        assert maildir is not None
        box = MaildirMailbox(maildir, move_to)
    engine = open_settings_store(settings)
    try:
        report = process_mailbox(
            engine,
            box,
            now=datetime.now(UTC),
            signer=signer,
            return_path=settings.return_path,
            policy=bounce_policy_for(settings),
            dry_run=dry_run,
        )
    finally:
        box.close()
        engine.dispose()
    for outcome in report.outcomes:
        found = outcome.classified
        detail = ""
        if found is not None:
            code = f" {found.status_code}" if found.status_code else ""
            detail = _shown(f" {found.kind}{code} {found.email or '?'}")
        # A dry run's new event ids were rolled back: only a duplicate's id is real.
        real = outcome.event_id and (not dry_run or outcome.verdict == "duplicate")
        event = f" (event {outcome.event_id})" if real else ""
        moved = f" -> {outcome.moved_to}" if outcome.moved_to else ""
        click.echo(f"{outcome.key}:{detail} {outcome.verdict}{event}{moved}")
    left = sum(report.count(v) for v in ("not a bounce", "unmatched", "already processed"))
    prefix = "dry run: " if dry_run else ""
    click.echo(
        f"{prefix}{box.describe()}: {len(report.outcomes)} message(s), "
        f"{len(report.outcomes) - left} processed, {report.count('unmatched')} unmatched, "
        f"{report.count('not a bounce')} not bounces (left in place)"
    )


@bounces_command.command("list")
@click.option("--since", default=None, help="Only events at or after this time (ISO, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option
@click.pass_context
def list_command(
    ctx: click.Context, since: str | None, as_json: bool, database_url: str | None
) -> None:
    """Every recorded bounce and complaint: when, what, whom, and what was done."""
    start = parse_moment(since, ZoneInfo("UTC")) if since else None
    engine = open_settings_store(settings_from(ctx, database_url=database_url), existing=True)
    try:
        events = list_bounces(engine, since=start)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([e.as_json() for e in events], indent=2))
        return
    for e in events:
        undone = "  (undone)" if e.undone_at else ""
        click.echo(
            f"{e.id}\t{e.received_at:%Y-%m-%d %H:%M}\t{e.kind}\t{e.status_code or '-'}\t"
            f"{e.email}\t{e.source}\t{e.action}{undone}"
        )


@bounces_command.command("show")
@click.argument("event_id", metavar="ID", type=int)
@db_option
@click.pass_context
def show_command(ctx: click.Context, event_id: int, database_url: str | None) -> None:
    """One event and the raw report it came from."""
    engine = open_settings_store(settings_from(ctx, database_url=database_url), existing=True)
    try:
        event = get_bounce(engine, event_id)
    finally:
        engine.dispose()
    for key, value in event.as_json().items():
        click.echo(_shown(f"{key}: {value if value is not None else '-'}"))
    click.echo("")
    click.echo(_shown(event.raw))


@bounces_command.command("undo")
@click.argument("event_id", metavar="ID", type=int)
@db_option
@click.pass_context
def undo_command(ctx: click.Context, event_id: int, database_url: str | None) -> None:
    """Reverse one event: status, enrollments, cancelled deliveries and suppression."""
    engine = open_settings_store(settings_from(ctx, database_url=database_url), existing=True)
    try:
        restored = undo_bounce(engine, event_id, now=datetime.now(UTC))
    finally:
        engine.dispose()
    click.echo(
        f"Undid event {event_id}: subscriber status restored {restored['subscriber']}, "
        f"{restored['enrollments']} enrollment(s) and {restored['deliveries']} delivery(ies) "
        f"restored, {restored['suppression']} suppression(s) removed"
    )
