"""Complete messages per second (bytes ready for SMTP): naive path vs per-step fast path.

    python bench/render.py [--subscribers 10000] [--campaign ketamine-therapy] [--step 2]

The naive path renders every message in full (Jinja, premailer, HTML-to-text,
MIME); the fast path compiles the step once and substitutes per
subscriber. Both run in this one process on one core, over the same subscribers.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dripline.campaign import load_campaign  # noqa: E402
from dripline.render import CampaignRenderer, Recipient  # noqa: E402

FIRST = ["Maria", "James", "Zoë", "Nguyễn", "Aisha", "Олег", "Sean", "María José", "李", "Ngozi"]
LAST = ["Lopez", "O'Brien", "Smith", "Müller", "Khan", "Иванов", "Tanaka", "Okafor", "García"]


def subscribers(count: int) -> list[Recipient]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        first = rng.choice(FIRST)
        fields = {"name": f"{first} {rng.choice(LAST)}", "timezone": "America/Los_Angeles"}
        if i % 5:  # one in five has no first name on file
            fields["first_name"] = first
        token = f"{rng.getrandbits(256):064x}"
        out.append(Recipient(f"user{i}@example.com", fields, f"https://news.example.com/u/{token}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--campaign", default="ketamine-therapy")
    parser.add_argument("--step", type=int, default=2)
    args = parser.parse_args()

    campaign = load_campaign(ROOT / "campaigns" / args.campaign)
    people = subscribers(args.subscribers)
    now = datetime(2026, 3, 9, 17, 0, tzinfo=UTC)

    naive_step = CampaignRenderer(campaign, ROOT / "templates").step(args.step)
    started = time.perf_counter()
    naive_bytes = sum(len(naive_step.render(p, now=now).data) for p in people)
    naive_seconds = time.perf_counter() - started

    fast_step = CampaignRenderer(campaign, ROOT / "templates").step(args.step)
    started = time.perf_counter()
    fast_step.slotted  # noqa: B018 - compiling the step is part of the fast path's cost
    compile_seconds = time.perf_counter() - started
    fast_bytes = sum(len(fast_step.render_bytes(p, now=now)[1]) for p in people)
    fast_seconds = time.perf_counter() - started

    naive_rate = len(people) / naive_seconds
    fast_rate = len(people) / fast_seconds
    print(f"Rendering step {args.step} of {args.campaign!r} for {len(people):,} subscribers")
    print(f"(average message {fast_bytes / len(people) / 1024:.1f} KB; one process, one core)\n")
    print(f"{'path':<10}{'seconds':>10}{'messages/s':>14}{'us/message':>13}")
    print(f"{'naive':<10}{naive_seconds:>10.2f}{naive_rate:>14,.0f}{1e6 / naive_rate:>13.0f}")
    print(f"{'fast':<10}{fast_seconds:>10.2f}{fast_rate:>14,.0f}{1e6 / fast_rate:>13.0f}")
    print(
        f"\nfast / naive: {fast_rate / naive_rate:.0f}x "
        f"(step compile {compile_seconds * 1000:.0f} ms included in fast)"
    )
    print("targets: fast >= 5,000 messages/s, >= 80x naive")
    if abs(naive_bytes - fast_bytes) > len(people) * 200:
        print(f"note: sizes differ (naive {naive_bytes:,} B, fast {fast_bytes:,} B)")


if __name__ == "__main__":
    main()
