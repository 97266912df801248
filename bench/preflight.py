"""Preflight figures: SpamAssassin scores of the ketamine emails, and what checking costs.

    python bench/preflight.py [--rounds 3]

Prints, with the date, load average, SpamAssassin version and commands:

1. the spam score of each ketamine email for each sample subscriber (preview.toml), as
   ``dripline check --spam`` computes it (local tests, private home, no Bayes), with the
   rules that added points;
2. the median wall time of ``dripline check`` and ``dripline check --spam`` over
   ``--rounds`` runs in this process, and their ratio to a check without the client-support
   and accessibility lookups (the reference, measured in the same run).

The README's table of scores comes from part 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dripline.campaign import load_campaign  # noqa: E402
from dripline.lint import lint_folder  # noqa: E402
from dripline.preflight import spam_reports, spamassassin_path  # noqa: E402
from dripline.render import CampaignRenderer  # noqa: E402
from dripline.samples import load_samples  # noqa: E402

SLUG = "ketamine-therapy"
BASE_URL = "http://127.0.0.1:8000"


def scores() -> None:
    campaign = load_campaign(ROOT / "campaigns" / SLUG)
    renderer = CampaignRenderer(campaign, ROOT / "templates")
    samples = load_samples(campaign, BASE_URL)
    rendered = [
        (step, sample, renderer.step(step.number).render(sample.recipient).data)
        for step in campaign.steps
        for sample in samples
    ]
    reports = spam_reports([data for _, _, data in rendered])
    print("| email | " + " | ".join(s.label for s in samples) + " | rules with points |")
    print("| --- |" + " --- |" * (len(samples) + 1))
    for index, step in enumerate(campaign.steps):
        row = reports[index * len(samples) : (index + 1) * len(samples)]
        rules = sorted(
            {f"{r.name} {r.points:g}" for report in row for r in report.rules if r.points}
        )
        cells = " | ".join(f"{report.score:g}" for report in row)
        print(f"| {step.name} | {cells} | {', '.join(rules) or 'none'} |")


def timed(function, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def timings(rounds: int) -> None:
    folder, templates = ROOT / "campaigns" / SLUG, ROOT / "templates"

    def check() -> None:
        lint_folder(folder, templates, BASE_URL)

    def check_without_preflight() -> None:
        with mock.patch("dripline.lint.StepPreflight.check", return_value=[]):
            lint_folder(folder, templates, BASE_URL)

    def check_spam() -> None:
        check()
        campaign = load_campaign(folder)
        renderer = CampaignRenderer(campaign, templates)
        samples = load_samples(campaign, BASE_URL)
        steps = [renderer.step(s.number) for s in campaign.steps]
        spam_reports([c.render(s.recipient).data for c in steps for s in samples])

    reference = timed(check_without_preflight, rounds)
    print("| run | median | ratio to reference |")
    print("| --- | --- | --- |")
    print(f"| check without client/accessibility lookups (reference) | {reference:.2f} s | 1.00x |")
    for name, function in (("dripline check", check), ("dripline check --spam", check_spam)):
        median = timed(function, rounds)
        print(f"| {name} | {median:.2f} s | {median / reference:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if spamassassin_path() is None:
        sys.exit("Error: SpamAssassin is not installed (apt-get install spamassassin)")
    version = subprocess.run(
        ["spamassassin", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC   load average: {os.getloadavg()}")
    print(f"command: python bench/preflight.py --rounds {args.rounds}   {version}")
    print(f"\nSpam scores of {SLUG} (threshold 5.0; spamassassin -L, no Bayes):\n")
    scores()
    print(f"\nTime to check {SLUG} (6 emails x 3 samples), median of {args.rounds} rounds:\n")
    timings(args.rounds)


if __name__ == "__main__":
    main()
