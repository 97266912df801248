"""Preflight, as a mail-QA desk does it: client support, accessibility and spam score.

``dripline check`` (and the preview's step page) run :class:`StepPreflight` on
every rendered email: each HTML element, attribute and CSS property is looked up
in caniemail's support data for the campaign's target clients (``[lint] clients``),
and the accessibility checks run on the same parsed document. ``dripline check
--spam`` adds :func:`spam_findings`: every message through SpamAssassin, scored
against ``[lint] spam_threshold``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from ..campaign import Campaign, line_of_key
from ..errors import DriplineError
from ..findings import Finding
from ..render import CampaignRenderer, CompiledStep
from ..samples import Sample, load_samples
from ._a11y import accessibility_findings
from ._caniemail import (
    DEFAULT_CLIENTS,
    client_name,
    known_clients,
    known_features,
    resolve_clients,
    snapshot_info,
    support,
)
from ._clients import client_findings, plain_note
from ._features import parse_html
from ._locate import IGNORE_DIRECTIVE, Locator
from ._spam import SpamReport, SpamRule, spam_reports, spamassassin_path

__all__ = [
    "DEFAULT_CLIENTS",
    "IGNORE_DIRECTIVE",
    "ClientGap",
    "SpamReport",
    "SpamRule",
    "StepPreflight",
    "campaign_spam_findings",
    "client_name",
    "gaps_by_client",
    "snapshot_info",
    "spam_findings",
    "spam_reports",
    "spamassassin_path",
    "target_clients",
]


@dataclass(frozen=True)
class ClientGap:
    """One feature one client lacks: for the preview's "by client" view."""

    finding: Finding
    title: str  # caniemail's name of the feature
    supported: str  # "not supported" or "partly supported"
    notes: tuple[str, ...]  # caniemail's notes on which part, for partial support


def gaps_by_client(findings: list[Finding]) -> list[tuple[str, list[ClientGap]]]:
    """Client-support findings regrouped per client: [(client name, gaps)], clients in order."""
    grouped: dict[str, list[ClientGap]] = {}
    titles = known_features()
    for finding in findings:
        if finding.rule != "client-support":
            continue
        for client in finding.clients:
            level = support(finding.feature, client)
            supported = "not supported" if level.status == "n" else "partly supported"
            gap = ClientGap(
                finding,
                titles.get(finding.feature, finding.feature),
                supported,
                tuple(plain_note(n) for n in level.notes),
            )
            grouped.setdefault(client_name(client), []).append(gap)
    return list(grouped.items())


def target_clients(campaign: Campaign) -> list[str]:
    """The names of the clients ``campaign`` is checked against (``[lint] clients``)."""
    clients, _ = resolve_clients(campaign.lint.clients or DEFAULT_CLIENTS)
    return [client_name(c) for c in clients]


def _did_you_mean(name: str) -> str:
    """ "; did you mean 'gmail'?" for a misspelt client id or family, else ""."""
    ids = known_clients()
    names = sorted({*ids, *(c.partition(".")[0] for c in ids)})
    close = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class StepPreflight:
    """Client-support and accessibility checks for one compiled step (source files read once)."""

    def __init__(self, compiled: CompiledStep) -> None:
        self.compiled = compiled
        self.step = compiled.step.number
        self.locator = Locator(compiled)
        campaign = compiled.campaign
        self.clients, unknown = resolve_clients(campaign.lint.clients or DEFAULT_CLIENTS)
        self.config_findings = [
            Finding(
                "error",
                f"unknown client {name!r} in [lint] clients{_did_you_mean(name)} (use "
                f"caniemail ids such as {', '.join(DEFAULT_CLIENTS[:3])}, or a family such as "
                "'gmail')",
                campaign.toml_path,
                line_of_key(campaign.toml_path, "clients"),
                self.step,
                "lint-config",
            )
            for name in unknown
        ]

    def check(self, html: str) -> list[Finding]:
        """Findings for one rendered HTML part of this step."""
        document = parse_html(html)
        return [
            *self.config_findings,
            *client_findings(document, self.locator, self.clients, self.step),
            *accessibility_findings(document, self.locator, self.step),
        ]


def _rules_text(report: SpamReport) -> str:
    scored = [str(rule) for rule in report.rules if rule.points]
    free = [rule.name for rule in report.rules if not rule.points]
    text = "; ".join(scored) if scored else "no rule added points"
    if free:
        text += f" (also hit, 0 points: {', '.join(free)})"
    return text


def spam_findings(steps: list[CompiledStep], samples: list[Sample]) -> list[Finding]:
    """SpamAssassin's score for each sample's message of each step, as findings.

    Above ``[lint] spam_threshold`` an error, above half of it a warning, else
    ``info`` (the score is always reported). Samples whose message scores the
    same with the same rules share one finding. One SpamAssassin run serves all
    ``steps``.

    Raises:
        DriplineError: SpamAssassin is not installed or fails.
    """
    rendered: list[tuple[CompiledStep, Sample, bytes]] = []
    for compiled in steps:
        for sample in samples:
            try:
                rendered.append((compiled, sample, compiled.render(sample.recipient).data))
            except DriplineError:
                continue  # the lint reports the render error itself
    reports = spam_reports([data for _, _, data in rendered])
    groups: dict[tuple[int, float, str], list[str]] = {}
    rendered_per_step: dict[int, int] = {}
    for (compiled, sample, _), report in zip(rendered, reports, strict=True):
        number = compiled.step.number
        rendered_per_step[number] = rendered_per_step.get(number, 0) + 1
        groups.setdefault((number, report.score, _rules_text(report)), []).append(sample.label)
    by_number = {compiled.step.number: compiled for compiled in steps}
    found = []
    for (number, score, rules), labels in groups.items():
        compiled = by_number[number]
        threshold = compiled.campaign.lint.spam_threshold
        severity = "error" if score > threshold else "warning" if score > threshold / 2 else "info"
        every = len(labels) == rendered_per_step[number]
        who = "every sample" if every else ", ".join(map(repr, labels))
        message = f"spam score {score:g} (threshold {threshold:g}) for {who}: {rules}"
        found.append(Finding(severity, message, compiled.step.path, None, number, "spam-score"))
    return found


def campaign_spam_findings(campaign: Campaign, templates_dir: Path, base_url: str) -> list[Finding]:
    """:func:`spam_findings` for every step of ``campaign`` that compiles.

    Raises:
        DriplineError: SpamAssassin is not installed or fails.
    """
    renderer = CampaignRenderer(campaign, templates_dir)
    samples = load_samples(campaign, base_url)
    steps = []
    for step in campaign.steps:
        try:
            steps.append(renderer.step(step.number))
        except DriplineError:
            continue  # the lint reports it
    return spam_findings(steps, samples)
