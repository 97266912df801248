"""Cost of the bounded sandbox (``*`` and ``+`` checked) against Jinja's plain sandbox.

    python bench/sandbox.py [--subscribers 500] [--rounds 5]

Two workloads, each rendered with ``dripline.templating``'s environments built on
``BoundedSandbox`` (today) and on ``ImmutableSandboxedEnvironment`` (before), in this
one process, rounds interleaved: (1) full messages of a real campaign step (the naive
path: Jinja, premailer, text, MIME), (2) a template that does nothing but ``*`` and
``+`` (the worst case: every operator goes through ``call_binop``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _bench import header, load_average  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

import dripline.templating as templating  # noqa: E402
from dripline._sandbox import BoundedSandbox  # noqa: E402
from dripline.campaign import load_campaign  # noqa: E402
from dripline.render import CampaignRenderer, Recipient  # noqa: E402

OPERATORS = (
    "{% for i in range(200) %}{{ '-' * 40 }}{{ i * 3 + 1 }}{{ [i] + [i] }}"
    "{{ subscriber.name + '!' }}{% endfor %}"
)


def workloads(campaign_dir: Path, count: int) -> dict[str, Callable[[], int]]:
    """Each workload built with the environment class in force now (read at call time)."""
    campaign = load_campaign(campaign_dir)
    step = CampaignRenderer(campaign, ROOT / "templates").step(2)
    people = [
        Recipient(f"u{i}@example.com", {"name": f"User {i}"}, f"https://x.example/u/{i}")
        for i in range(count)
    ]
    now = datetime(2026, 3, 9, 17, 0, tzinfo=UTC)
    operators = templating.make_environments(None).text.from_string(OPERATORS)
    return {
        "campaign step 2 (naive path)": lambda: sum(
            len(step.render(p, now=now).data) for p in people
        ),
        "200 x (*, +, +, +) per render": lambda: sum(
            len(operators.render(subscriber={"name": p.email})) for p in people
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--campaign", default="ketamine-therapy")
    args = parser.parse_args()
    load_before = load_average()
    built = {}
    for label, cls in (("plain", ImmutableSandboxedEnvironment), ("bounded", BoundedSandbox)):
        templating.BoundedSandbox = cls  # type: ignore[misc]  # what _environment builds
        built[label] = workloads(ROOT / "campaigns" / args.campaign, args.subscribers)
    templating.BoundedSandbox = BoundedSandbox  # type: ignore[misc]
    timings: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, work in built.items():
            for name, run in work.items():
                started = time.perf_counter()
                run()
                timings.setdefault((name, label), []).append(time.perf_counter() - started)
    header("Bounded sandbox vs plain Jinja sandbox (one process, one core)", load_before)
    print(f"{args.subscribers} renders per round, {args.rounds} rounds, medians\n")
    print(f"{'workload':<32}{'plain ms':>10}{'bounded ms':>12}{'bounded/plain':>15}")
    for name in built["plain"]:
        plain = statistics.median(timings[(name, "plain")]) * 1000
        bounded = statistics.median(timings[(name, "bounded")]) * 1000
        print(f"{name:<32}{plain:>10.1f}{bounded:>12.1f}{bounded / plain:>15.2f}")


if __name__ == "__main__":
    main()
