"""Plain-text snapshots of each email, kept in git so a pull request shows how it changes.

``dripline snapshot SLUG`` writes ``campaigns/SLUG/.snapshots/NN-id.txt`` per step:
the key headers and the plain-text part rendered for the first sample subscriber
(with a fixed clock, so only an edit changes a file). Once that folder exists,
``dripline check`` fails while a snapshot is stale, missing or left over.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from .campaign import Campaign
from .render import CampaignRenderer
from .samples import load_samples

__all__ = ["SNAPSHOT_DIR", "expected_snapshots", "stale_snapshots", "write_snapshots"]

SNAPSHOT_DIR = ".snapshots"
_RENDERED_AT = datetime(2000, 1, 1, tzinfo=UTC)


def expected_snapshots(
    campaign: Campaign, templates_dir: Path, base_url: str, render_budget: float | None = None
) -> dict[str, str]:
    """File name -> contents for every step, as :func:`write_snapshots` would write them;
    each step compiles and renders within ``render_budget`` seconds (None: no limit).

    Raises :class:`~dripline.errors.DriplineError` when a step does not render (in time).
    """
    renderer = CampaignRenderer(campaign, templates_dir, render_budget=render_budget)
    sample = load_samples(campaign, base_url)[0]
    found: dict[str, str] = {}
    for step in campaign.steps:
        email = renderer.step(step.number).render(
            sample.recipient, now=_RENDERED_AT, message_id="<snapshot@dripline>"
        )
        reply_to = f"Reply-To: {campaign.reply_to}\n" if campaign.reply_to else ""
        found[f"{step.number:02d}-{step.id}.txt"] = (
            f"Step: {step.id} (day {step.day})\n"
            f"From: {campaign.from_name} <{campaign.from_address}>\n"
            f"{reply_to}"
            f"Subject: {email.subject}\n"
            f"Preheader: {step.preheader}\n"
            f"Sample: {sample.label}\n"
            "\n"
            f"{email.text.rstrip()}\n"
        )
    return found


def write_snapshots(
    campaign: Campaign, templates_dir: Path, base_url: str, render_budget: float | None = None
) -> list[Path]:
    """Write (and prune) the campaign's snapshots; returns the files written."""
    folder = campaign.path / SNAPSHOT_DIR
    expected = expected_snapshots(campaign, templates_dir, base_url, render_budget)
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.txt"):
        if old.name not in expected:
            old.unlink()
    written = []
    for name, text in expected.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_snapshots(
    campaign: Campaign, templates_dir: Path, base_url: str, render_budget: float | None = None
) -> list[tuple[Path, str]]:
    """(file, why) for each snapshot that does not match the campaign; [] without the folder."""
    folder = campaign.path / SNAPSHOT_DIR
    if not folder.is_dir():
        return []
    expected = expected_snapshots(campaign, templates_dir, base_url, render_budget)
    problems: list[tuple[Path, str]] = []
    for name, text in expected.items():
        path = folder / name
        if not path.is_file():
            problems.append((path, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            problems.append((path, "stale"))
    for path in sorted(folder.glob("*.txt")):
        if path.name not in expected:
            problems.append((path, "no step has this snapshot any more"))
    return problems
