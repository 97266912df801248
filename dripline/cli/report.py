"""``dripline report SLUG [--out report.html] [--json] [--since DATE]``: per-step results."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import DriplineError
from ..results import campaign_report, decided_on, p_text, parse_since, report_html
from . import settings_from
from ._store import db_option, load_campaign_by_slug, open_settings_store

__all__ = ["report_command"]


@click.command("report")
@click.argument("slug")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML report (charts included) to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option("--since", "since_text", metavar="DATE", help="Only messages sent from DATE on.")
@db_option
@click.pass_context
def report_command(
    ctx: click.Context,
    slug: str,
    out: Path | None,
    as_json: bool,
    since_text: str | None,
    database_url: str | None,
) -> None:
    """Per step: sent, skipped (its when was false), delivered, people's clicks, machine
    clicks, opens, unsubscribes, bounces and conversions; sends per day; time to conversion."""
    settings = settings_from(ctx, database_url=database_url)
    since = parse_since(since_text)
    campaign = load_campaign_by_slug(settings, slug)
    engine = open_settings_store(settings, existing=True)
    try:
        report = campaign_report(engine, campaign, since=since)
    finally:
        engine.dispose()
    if out is not None:
        try:
            out.write_text(report_html(report), encoding="utf-8")
        except OSError as err:
            raise DriplineError(f"cannot write {out}: {err.strerror}") from None
    data = report.as_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    _print(data)
    if out is not None:
        click.echo(f"Report written to {out}")


def _print(data: dict) -> None:  # type: ignore[type-arg]
    table = Table(title=f"{data['name']} ({data['campaign']})")
    opens = data["tracking"]["opens"]
    skipped = data["totals"]["skipped"] > 0  # only campaigns whose `when` left someone out
    columns = ["step", "sent", *(["skipped"] if skipped else []), "delivered"]
    columns += ["clicks", "rate", "machine"]
    columns += ["opens (unreliable)"] if opens else []
    columns += ["unsubscribed", "bounced", "converted"]
    for name in columns:
        table.add_column(name, justify="left" if name == "step" else "right")
    for s in data["steps"]:
        row = [
            f"{s['number'] or '-'}. {s['step']}",
            str(s["sent"]),
            *([str(s["skipped"])] if skipped else []),
            str(s["delivered"]),
            str(s["clicks"]),
            f"{s['click_rate']:.1%}",
            str(s["machine_clicks"]),
        ]
        row += [str(s["opens"])] if opens else []
        row += [str(s["unsubscribes"]), str(s["bounces"]), str(s["conversions"])]
        table.add_row(*row)
    Console().print(table)
    t, ttc = data["totals"], data["time_to_conversion"]
    line = f"{t['enrolled']} enrolled, {t['conversions']} converted"
    if data["since"]:  # the rate is over the people enrolled in the window (see the docs)
        line = (
            f"since {data['since']}: {t['enrolled']} enrolled "
            f"({t['conversion_rate'] * 100:.1f}% of them converted), "
            f"{t['conversions']} converted"
        )
    if ttc["median_hours"] is not None:
        line += f" (median {ttc['median_hours']} h after enrolling)"
    click.echo(line)
    if t["unclassified_clicks"]:
        click.echo(
            f"{t['unclassified_clicks']} of the people's clicks came only from unclassified "
            "user agents (unknown apps, headless browsers)"
        )
    if t["ambiguous"]:
        maybe = ", ".join(f"{s['step']} {s['ambiguous']}" for s in data["steps"] if s["ambiguous"])
        click.echo(f"{t['ambiguous']} ambiguous (maybe sent, in no column above): {maybe}")
    for s in data["steps"]:
        if s["experiment"]:
            _print_experiment(s)


def _window(seconds: int) -> str:
    """``click_window_seconds`` as the campaign.toml syntax would write it (24h, 90m)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _print_experiment(step: dict) -> None:  # type: ignore[type-arg]
    experiment = step["experiment"]
    click.echo(f"A/B subjects of {step['number'] or '-'}. {step['step']}:")
    # No variant in the step now: it is back to one subject, and the test is over.
    ended = not any(v["current"] for v in experiment["variants"])
    for v in experiment["variants"]:
        label = f"{v['variant']}." if v["current"] else "-"
        gone = "" if v["current"] or ended else " (no longer in the step)"
        since = v["since_winner"]
        later = f"; since the winner: {since['sent']} sent" if since and since["sent"] else ""
        click.echo(
            f"  {label} {v['subject']!r}{gone}: {v['sent']} sent, {v['clicks']} clicked, "
            f"{v['click_rate']:.1%} ({v['ci_low']:.1%} to {v['ci_high']:.1%}, "
            f"{experiment['interval']}){later}"
        )
    winner, judged = experiment["winner"], experiment["judged"]
    if ended:
        click.echo("  the A/B test ended: the step has one subject now (the counts it had)")
    elif judged is not None and winner is None:
        sent = "/".join(str(t["sent"]) for t in judged["counts"])
        click.echo(
            f"  judged {judged['decided_at'][:10]} on {sent} sent: no significant difference "
            f"(p = {judged['p_value']:.2g}); the split goes on"
        )
    elif winner is None and experiment.get("waiting_for_clicks"):
        clicks = sum(v["clicks"] for v in experiment["variants"] if v["current"])
        click.echo(
            f"  no winner yet (only {clicks} people's clicks so far; the test is judged once "
            f"there are at least {experiment['clicks_needed']})"
        )
    elif winner is None:
        click.echo(
            f"  no winner yet (judged once, when every variant has {experiment['winner_after']} "
            f"sent at least {_window(experiment['click_window_seconds'])} ago)"
            if experiment["winner_after"]
            else "  no winner yet (no [experiment] winner_after: the split goes on)"
        )
    else:
        click.echo(
            f"  winner: {winner['subject']!r}, decided {winner['decided_at']} on "
            f"{decided_on(winner)} ({p_text(winner['p_value'])})"
        )
        if experiment["split_resumed"]:
            click.echo(
                "  the winner's text is no longer among the step's subjects: the split resumed"
            )
