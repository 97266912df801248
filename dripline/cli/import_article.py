"""``dripline import-article``: turn an "N reasons" article into a campaign folder."""

from __future__ import annotations

from pathlib import Path

import click

from ..article import Article, ArticleError, CampaignPlan, load_article, plan_campaign
from ..article import write_campaign as write_campaign_folder
from . import settings_from
from ._options import option_value

__all__ = ["import_article_command"]


def _found(article: Article) -> str:
    return "\n".join(
        f"  {n}. {s.heading}" + (f" (line {s.line})" if s.line else "")
        for n, s in enumerate(article.sections, start=1)
    )


def _check_count(article: Article, force: bool) -> None:
    announced = article.announced_count
    found = len(article.sections)
    if announced is None or announced == found:
        return
    message = (
        f"the title announces {announced} but {found} section(s) were found:\n{_found(article)}"
    )
    if not force:
        raise ArticleError(
            message + "\nFix the headings, or use --force to import what was found.",
            path=article.source,
        )
    click.echo(f"Warning: {article.source}: {message}", err=True)


def _shorten(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1].rsplit(" ", 1)[0] + "…"


def _print_plan(plan: CampaignPlan, target: Path) -> None:
    article = plan.article
    click.echo(f"Article: {article.source} ({article.format})")
    click.echo(f"Title: {article.title}")
    click.echo(f"Introduction: {len(article.intro)} paragraph(s)")
    for block in article.intro:
        click.echo(f"  {_shorten(' '.join(block.split()))}")
    click.echo(f"Sections: {len(article.sections)}")
    for email in plan.emails:
        immediately = ", sent immediately" if email.send_immediately else ""
        click.echo(f"  {email.file_name} (day {email.day}{immediately})")
        click.echo(f"    ## {email.heading}")
        click.echo(f"    {_shorten(email.first_sentence)}")
    replacing = " (replacing the existing campaign: needs --force)" if target.exists() else ""
    click.echo(f"Would write {target}/{replacing} (dry run: nothing written)")


@click.command("import-article")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--slug", required=True, help="Campaign folder name under campaigns/ (a-z, 0-9, -).")
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Days between emails.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing campaign, and import even when the section count is off.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.pass_context
def import_article_command(
    ctx: click.Context, file: Path, slug: str, every: int, force: bool, dry_run: bool
) -> None:
    """Turn an "N reasons" article (.txt, .md, .html) into campaigns/SLUG/, one email per reason."""
    settings = settings_from(ctx)
    article = load_article(file)
    with option_value("--slug"):
        plan = plan_campaign(article, slug, every)
    target = settings.campaigns_dir / slug
    if dry_run:
        # The plan first, so a count mismatch can be judged against what was found.
        _print_plan(plan, target)
        _check_count(article, force)
        return
    _check_count(article, force)
    written = write_campaign_folder(plan, settings.campaigns_dir, force=force)
    click.echo(f"Wrote {written}/ with {len(plan.emails)} emails:")
    for email in plan.emails:
        click.echo(f"  {email.file_name}  day {email.day:>3}  {email.subject}")
    click.echo("Edit campaign.toml (sender, postal address, schedule) before the first send.")
