"""``dripline check``: load every campaign and lint every email as subscribers will get it.

Errors (exit 1): anything that stops a campaign loading or rendering, variables
that are unknown or missing for a sample subscriber, links that are not http(s)
or mailto, an HTML part over 102 KB as sent (Gmail clips it), a missing
unsubscribe link or postal address, control characters, U+FFFD or bidi
overrides in a step file, two steps with one identity, a stale snapshot (when
the campaign has a ``.snapshots`` folder: see :mod:`dripline.snapshots`).
Warnings: subjects over 78 characters, a missing preheader, images without alt
text, subscriber fields no sample has, an HTML part over 90 KB as sent,
zero-width characters in a step file, links a click-tracked campaign cannot track
(:mod:`dripline._hrefs`); and what :mod:`dripline.preflight` finds
in each rendered HTML part: features a target mail client lacks (caniemail) and
accessibility problems. Every finding names its ``rule`` (for ``check --json``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email import message_from_bytes
from email.policy import default as default_policy
from html.parser import HTMLParser
from pathlib import Path

from jinja2 import UndefinedError, meta, nodes

from ._hrefs import untracked_link_findings
from ._lint_chars import invisible_findings
from .campaign import Campaign, Step, line_of_key, load_campaign
from .conditions import as_stored, step_applies
from .errors import DriplineError
from .experiments import experiment_findings
from .findings import Finding
from .guards import campaign_problems
from .preflight import StepPreflight
from .render import CampaignRenderer, CompiledStep
from .samples import load_samples, non_text_values
from .snapshots import stale_snapshots
from .templating import RenderBudgetExceeded, TimeBudget

__all__ = [
    "GMAIL_CLIP_BYTES",
    "GMAIL_WARN_BYTES",
    "Finding",
    "guard_findings",
    "html_part_size",
    "lint_campaign",
    "lint_folder",
    "lint_step",
]

# Gmail clips a message whose HTML part, as transmitted (quoted-printable here), passes
# 102 KB; decoded HTML is smaller than that by a tenth or more, so it must not be measured.
GMAIL_CLIP_BYTES = 102 * 1024
GMAIL_WARN_BYTES = 90 * 1024
MAX_SUBJECT = 78
STANDARD_FIELDS = frozenset({"email", "name", "first_name", "last_name", "timezone"})
# tracked_links and open_pixel_url: put in by click and open tracking ([tracking]).
_TEMPLATE_NAMES = frozenset(
    {
        "subscriber",
        "unsubscribe_url",
        "campaign",
        "step",
        "recipient",
        "tracked_links",
        "open_pixel_url",
    }
)


class _Elements(HTMLParser):
    """Collects links and images of a rendered email."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "a" and attributes.get("href") is not None:
            self.links.append(attributes["href"] or "")
        elif tag == "img":
            self.images.append(attributes)


def _line_in(step: Step, needle: str) -> int | None:
    """The file line where ``needle`` first appears in the step's file, for pointing at it."""
    try:
        text = step.path.read_text(encoding="utf-8")
    except OSError:
        return None
    index = text.find(needle) if needle else -1
    return text.count("\n", 0, index) + 1 if index >= 0 else step.body_line


def _names_used(compiled: CompiledStep) -> tuple[set[str], list[str]]:
    """(unknown top-level names, ``subscriber.<field>`` names) in the step's templates."""
    env = compiled.renderer.envs.text
    unknown: set[str] = set()
    fields: list[str] = []
    for source in (compiled.step.subject, compiled.step.preheader, compiled.body_source):
        tree = env.parse(source)
        unknown |= meta.find_undeclared_variables(tree)
        fields += [
            node.attr
            for node in tree.find_all(nodes.Getattr)
            if isinstance(node.node, nodes.Name) and node.node.name == "subscriber"
        ]
    return unknown - _TEMPLATE_NAMES, fields


def html_part_size(data: bytes) -> int:
    """Bytes of the HTML part's body as transmitted (after its Content-Transfer-Encoding)."""
    message = message_from_bytes(data, policy=default_policy)
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=False)
            return len(payload.encode("ascii", "surrogateescape"))
    return 0


def _size_finding(data: bytes) -> tuple[str, str] | None:
    size = html_part_size(data)
    shown = f"HTML part is {size / 1024:.1f} KB as sent (quoted-printable)"
    if size > GMAIL_CLIP_BYTES:
        return "error", f"{shown}; Gmail clips messages over 102 KB"
    if size >= GMAIL_WARN_BYTES:
        return "warning", f"{shown}; Gmail clips messages over 102 KB, keep a margin"
    return None


def _render_failure(err: DriplineError, step: Step, label: str) -> tuple[str, int | None]:
    """(message, line in the step's file) for a sample that could not be rendered, naming
    the real cause; a layout's failure names the layout's file and line in the message."""
    text = err.message.split("cannot render: ", 1)[-1]
    line = err.line
    if err.path is not None and err.path != step.path:  # a layout, or a file it includes
        text = f"{err.path}{f':{line}' if line else ''}: {text}"
        line = None
    if isinstance(err.__cause__, UndefinedError):
        match = re.search(r"'(?:dict object|[\w.]+)' has no attribute '(\w+)'", text)
        needle = f"subscriber.{match.group(1)}" if match else ""
        message = f"for sample {label!r}: unknown or missing variable: {text}"
        return message, line if line is not None else _line_in(step, needle)
    if line is not None and isinstance(err.__cause__, DriplineError):
        return f"cannot render: {text}", line  # the subject as a header: every sample's
    return f"for sample {label!r}: cannot render: {text}", line or _line_in(step, "")


def _check_when(step: Step, samples: list, add: Callable[..., None], budget: float | None) -> None:
    """Evaluate the step's ``when`` for every sample: a failure is an error at its line.

    All samples share one render budget (seconds): an expression that runs away is one error.
    """
    receiving = failing = 0
    time_left = TimeBudget(budget)
    for sample in samples:
        try:
            with time_left.watch("evaluating when"):
                # As a stored subscriber: attributes are text, standard fields present.
                fields = as_stored(sample.recipient.fields)
                applies = step_applies(step, sample.recipient.email, fields)
            receiving += applies
        except RenderBudgetExceeded as err:
            add("error", err.message, line_of_key(step.path, "when"), "when")
            return
        except DriplineError as err:
            failing += 1
            add("error", f"for sample {sample.label!r}: {err.message}", err.line, "when")
    if samples and not receiving and not failing:
        add(
            "warning",
            f"when {step.when!r} is false for every sample subscriber: no preview shows who "
            "gets this step (add one to preview.toml)",
            line_of_key(step.path, "when"),
            "when",
        )


def lint_step(compiled: CompiledStep, samples: list, sample_fields: set[str]) -> list[Finding]:
    step = compiled.step
    found: list[Finding] = []

    def add(severity: str, message: str, line: int | None = None, rule: str = "lint") -> None:
        finding = Finding(severity, message, step.path, line, step.number, rule)
        if finding not in found:
            found.append(finding)

    preflight = StepPreflight(compiled)
    unknown, fields = _names_used(compiled)
    for name in sorted(unknown):
        add("error", f"unknown variable {name!r}", _line_in(step, name), "unknown-variable")
    for field_name in fields:
        if field_name not in STANDARD_FIELDS | sample_fields:
            add(
                "warning",
                f"subscriber.{field_name} is not a standard field and no sample subscriber "
                "has it (add it to preview.toml)",
                _line_in(step, f"subscriber.{field_name}"),
                "unknown-field",
            )
    if not step.preheader.strip():
        add(
            "warning",
            "no preheader: inboxes will show the first words of the body instead",
            2,
            "no-preheader",
        )
    for severity, message, line in invisible_findings(step):
        add(severity, message, line, "invisible-characters")
    if step.when:
        _check_when(step, samples, add, compiled.renderer.render_budget)

    for sample in samples:
        try:
            email = compiled.render(sample.recipient)
        except RenderBudgetExceeded as err:
            # Every other sample would take as long: one error for the step is enough.
            found.append(
                Finding("error", err.message, err.path, err.line, step.number, "render-budget")
            )
            break
        except DriplineError as err:
            if isinstance(err.__cause__, RecursionError):
                # A macro or template calling itself without end fails for every sample.
                add(
                    "error",
                    "a template or macro calls itself without end (RecursionError)",
                    _line_in(step, "{% macro"),
                    "render",
                )
                break
            add("error", *_render_failure(err, step, sample.label), "render")
            continue
        if len(email.subject) > MAX_SUBJECT:
            add(
                "warning",
                f"subject is {len(email.subject)} characters; inboxes cut it near {MAX_SUBJECT}",
                line_of_key(step.path, "subject"),
                "subject-length",
            )
        size_finding = _size_finding(email.data)
        if size_finding:
            add(*size_finding, None, "gmail-clip")
        elements = _Elements()
        elements.feed(email.html)
        for href in elements.links:
            if not re.match(r"(?i)(https?://|mailto:)", href):
                add(
                    "error",
                    f"link {href!r} is not an http(s) or mailto link",
                    _line_in(step, href.split("?")[0]),
                    "link-scheme",
                )
        for image in elements.images:
            if not (image.get("alt") or "").strip() and image.get("alt") != "":
                add(
                    "warning",
                    f"image {image.get('src')!r} has no alt text",
                    _line_in(step, str(image.get("src") or "")),
                    "img-alt",
                )
        url = sample.recipient.unsubscribe_url
        for finding in untracked_link_findings(compiled, elements.links, url):
            if finding not in found:
                found.append(finding)
        if url and (f'href="{url}"' not in email.html or url not in email.text):
            message = "no unsubscribe link in the HTML or text part (check the layout)"
            add("error", message, rule="unsubscribe")
        address = compiled.campaign.postal_address
        if address not in email.html.replace("&amp;", "&") or address not in email.text:
            message = "the postal address is missing from the HTML or text part"
            add("error", message, rule="postal-address")
        # Client support (caniemail) and accessibility: dripline.preflight.
        for finding in preflight.check(email.html):
            if finding not in found:
                found.append(finding)
    return found


def lint_campaign(
    campaign: Campaign, templates_dir: Path, base_url: str, *, render_budget: float | None = None
) -> list[Finding]:
    renderer = CampaignRenderer(campaign, templates_dir, render_budget=render_budget)
    samples = load_samples(campaign, base_url)
    sample_fields = {key for s in samples for key in s.recipient.fields}
    findings = guard_findings(campaign) + experiment_findings(campaign)
    findings += [
        Finding("warning", message, path, line, None, "sample-value")
        for message, path, line in non_text_values(campaign)
    ]
    reported: set[tuple] = set()
    for step in campaign.steps:
        try:
            compiled = renderer.step(step.number)
        except DriplineError as err:
            # A campaign.toml problem fails every step the same way: say it once.
            if not any(
                (f.message, f.path, f.line) == (err.message, err.path, err.line) for f in findings
            ):
                findings.append(
                    Finding("error", err.message, err.path, err.line, step.number, "template")
                )
            continue
        found = lint_step(compiled, samples, sample_fields)
        found += _variant_findings(renderer, step, samples)
        for finding in found:
            # What the shared layout causes is the same for every step: say it once.
            key = (finding.rule, finding.path, finding.line, finding.message)
            if finding.path == step.path or key not in reported:
                reported.add(key)
                findings.append(finding)
    return findings


def _variant_findings(renderer: CampaignRenderer, step: Step, samples: list) -> list[Finding]:
    """A/B subjects after the first (which :func:`lint_step` renders as the step's subject):
    each must compile and render for every sample, and fit an inbox line."""
    found: list[Finding] = []
    line = line_of_key(step.path, "subjects")
    for index in range(1, len(step.subjects)):
        try:
            compiled = renderer.step_variant(step.number, index)
            for sample in samples:
                subject = compiled.render(sample.recipient).subject
                if len(subject) > MAX_SUBJECT:
                    message = (
                        f"subject variant {index + 1} is {len(subject)} characters; inboxes "
                        f"cut it near {MAX_SUBJECT}"
                    )
                    found.append(
                        Finding("warning", message, step.path, line, step.number, "subject-length")
                    )
                    break
        except DriplineError as err:
            message = f"subject variant {index + 1}: {err.message}"
            found.append(Finding("error", message, step.path, line, step.number, "template"))
    return found


def guard_findings(campaign: Campaign) -> list[Finding]:
    """Placeholders are errors; sender addresses at example domains are warnings."""
    return [
        Finding(
            "error" if p.kind == "placeholder" else "warning",
            p.message,
            p.path,
            p.line,
            rule="placeholder" if p.kind == "placeholder" else "example-address",
        )
        for p in campaign_problems(campaign)
    ]


def lint_folder(
    folder: Path, templates_dir: Path, base_url: str, *, render_budget: float | None = None
) -> tuple[Campaign | None, list]:
    """Load and lint one campaign folder; a load error is returned as a finding.

    ``render_budget``: seconds one sample render may take (a runaway template is an
    error for its step, and the other steps and campaigns are still checked).
    """
    try:
        campaign = load_campaign(folder)
        findings = lint_campaign(campaign, templates_dir, base_url, render_budget=render_budget)
    except DriplineError as err:
        return None, [Finding("error", err.message, err.path, err.line, rule="load")]
    if not any(f.severity == "error" for f in findings):
        try:
            stale = stale_snapshots(campaign, templates_dir, base_url, render_budget)
        except DriplineError as err:
            stale = [(folder / ".snapshots", str(err))]
        findings += [
            Finding(
                "error",
                f"snapshot {why}: run `dripline snapshot {campaign.slug}`",
                path,
                rule="snapshot",
            )
            for path, why in stale
        ]
    return campaign, findings
