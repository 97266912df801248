"""Render a campaign step into complete messages: the full path and the per-step fast path.

The full path does everything for one recipient: Jinja, CSS inlining (premailer),
HTML-to-text, MIME. It is the reference and what previews show.

The fast path (:meth:`CompiledStep.render_bytes`) does the expensive work once
per step: it renders the templates with inert slot markers where per-subscriber
values go, inlines CSS, converts to text and quoted-printable encodes the static
pieces; per recipient it only evaluates the slot expressions, escapes each value
for where it lands (HTML text, an attribute, a URL, a header) and joins bytes.
When a value cannot be placed byte-for-byte the way the full path would place it
(say, a quote inside an attribute), that one message takes the full path.

Both paths write headers and bodies with :mod:`dripline.mime` (the headers of a
message are the same bytes either way) and the text part with
:mod:`dripline._flowed`, so what they send reads the same.
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, TemplateNotFound, TemplateSyntaxError, meta
from markupsafe import Markup

from ._context import clean_fields, display_name, step_context
from ._flowed import flow_text
from ._inline import inline_css
from ._slots import SlottedStep
from .campaign import Campaign, Step, line_of_key
from .errors import CampaignError, DriplineError, RenderError
from .htmltext import html_to_text
from .markdown import OPEN_PIXEL, add_link_tracking, markdown_to_html_template, track_links
from .mime import (
    check_header_value,
    encode_address,
    encode_header,
    encode_list_id,
    multipart_body,
    multipart_head,
    qp_encode,
    raw_header,
)
from .templating import (
    Environments,
    RenderBudgetExceeded,
    TimeBudget,
    failing_template_line,
    make_environments,
    template_cycle,
    time_budget,
)

__all__ = ["CampaignRenderer", "CompiledStep", "Recipient", "RenderedEmail"]


@dataclass(frozen=True)
class Recipient:
    """Who a message is for, and the per-subscriber values templates may use."""

    email: str
    fields: Mapping[str, Any] = field(default_factory=dict)  # name, first_name, attributes...
    unsubscribe_url: str = ""
    # Click tracking: this delivery's BASE/c/TOKEN URL for each of the step's tracked links
    # (CompiledStep.tracked_urls); empty means the original URLs (previews, test sends).
    links: tuple[str, ...] = ()
    open_url: str = ""  # open tracking: this delivery's BASE/o/TOKEN image (empty: none)


@dataclass(frozen=True)
class RenderedEmail:
    """One message, rendered the full way: its parts and its bytes.

    ``text`` is the plain-text part's logical lines (what a flowed reader shows);
    ``data`` holds it as ``format=flowed``.
    """

    step: Step
    recipient: str
    message_id: str
    subject: str
    html: str
    text: str
    data: bytes


class _MessageIds:
    """Unique ids without a system call each: 96 random bits per process, then a counter.

    ``os.urandom`` per message cost more than rendering the rest of a header on a busy
    machine. A new process (a fork included) draws a new random prefix.
    """

    def __init__(self) -> None:
        self._pid = 0
        self._prefix = ""
        self._count = itertools.count()

    def next(self) -> str:
        pid = os.getpid()
        if pid != self._pid:
            self._pid, self._prefix = pid, uuid.uuid4().hex[:24]
        return f"{self._prefix}{next(self._count):08x}"


_ids = _MessageIds()
# The open image where there is no delivery to count (previews, test sends): a blank GIF.
_BLANK_IMAGE = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="


def new_message_id(domain: str) -> str:
    """A globally unique Message-ID (RFC 5322 3.6.4) at ``domain``, angle brackets included."""
    return f"<{_ids.next()}@{domain}>"


class CampaignRenderer:
    """Renders every step of one campaign; steps are compiled once, on first use."""

    def __init__(
        self,
        campaign: Campaign,
        templates_dir: Path,
        *,
        list_domain: str | None = None,
        render_budget: float | None = None,
    ):
        self.campaign = campaign
        self.templates_dir = templates_dir
        # Seconds one full render may take (None: no limit); see templating.time_budget.
        self.render_budget = render_budget
        self.envs: Environments = make_environments(templates_dir)
        self.domain = campaign.from_address.rpartition("@")[2]
        self.list_domain = list_domain or self.domain
        self._compiled: dict[int, CompiledStep] = {}
        self._variants: dict[tuple[int, int], CompiledStep] = {}
        try:
            with time_budget(render_budget, "compiling the layout"):
                self._check_layout()
        except RenderBudgetExceeded as err:
            path, line = layout_place(err, campaign, templates_dir)
            raise RenderBudgetExceeded(err.message, path=path, line=line) from err

    def _check_layout(self) -> None:
        for suffix in ("html", "txt"):
            name = f"{self.campaign.layout}.{suffix}"
            try:
                self.envs.html.get_template(name)
            except TemplateNotFound as err:
                raise CampaignError(
                    f"unknown layout {self.campaign.layout!r}: templates/{name} does not exist",
                    path=self.campaign.toml_path,
                    line=line_of_key(self.campaign.toml_path, "layout"),
                ) from err
            except TemplateSyntaxError as err:
                where = self.templates_dir / name
                raise CampaignError(
                    f"template error: {err.message}", path=where, line=err.lineno
                ) from err
        layouts = [f"{self.campaign.layout}.{suffix}" for suffix in ("html", "txt")]
        self.check_cycle(template_cycle(self.envs.html, layouts))

    def check_cycle(
        self, cycle: list[str] | None, path: Path | None = None, source: str = ""
    ) -> None:
        """A loop of templates is one error naming them all, at the first one's reference."""
        if not cycle:
            return
        if path is None:
            path = self.templates_dir / cycle[0]
            source = path.read_text(encoding="utf-8")
        index = source.find(cycle[1])
        raise CampaignError(
            "templates include or extend each other in a loop: " + " -> ".join(cycle),
            path=path,
            line=source.count("\n", 0, index) + 1 if index >= 0 else None,
        )

    def step(self, number: int) -> CompiledStep:
        """Step ``number``, compiled once (within the render budget, when there is one).

        Raises CampaignError; RenderBudgetExceeded when compiling takes longer than the
        budget (Jinja folds constant expressions while it compiles, so a step can run
        away before any render).
        """
        if number not in self._compiled:
            self._compiled[number] = self._compile(self.campaign.step(number))
        return self._compiled[number]

    def _compile(self, step: Step, subject_line: int | None = None) -> CompiledStep:
        """``step`` compiled within the budget; past it, the error is at the line of the
        expression Jinja was working out (``subject_line`` for an A/B variant's subject)."""
        try:
            with time_budget(self.render_budget, f"compiling {step.path.name}"):
                return CompiledStep(self, step)
        except RenderBudgetExceeded as err:
            position = (err.template, err.template_line, err.part, err.part_source)
            where, line = self.runaway_place(step, position)
            if subject_line is not None and err.part == "subject":
                line = subject_line
            raise RenderBudgetExceeded(err.message, path=where, line=line) from err

    def runaway_place(
        self,
        step: Step,
        position: tuple[str | None, int | None, str | None, str | None],
        compiled: CompiledStep | None = None,
    ) -> tuple[Path, int | None]:
        """(file, line) to name for template code of ``step`` that ran out of time, from
        :func:`~dripline.templating.runaway_position`: a template file and its line; the
        line of the step's part that was compiling (its key, or its Markdown line); the
        body's line of a render of ``compiled``; else where the body starts."""
        template, line, part, source = position
        if template is not None:  # a layout, or a file it or the step includes
            return self.templates_dir / template, line
        if part == "body" and source and line:
            return step.path, _markdown_line(step, source, line)
        if part in ("subject", "preheader"):
            return step.path, line_of_key(step.path, _front_matter_key(step, part))
        if part is None and compiled is not None and line:  # rendering: the body, likely
            return step.path, _markdown_line(step, compiled.body_source, line)
        return step.path, step.body_line

    def step_variant(self, number: int, index: int) -> CompiledStep:
        """Step ``number`` with its A/B subject variant ``index`` (0-based) as the subject.

        Variant 0 is the step itself (``Step.subject`` is the first variant); each other
        variant is compiled once, fast path included. Raises CampaignError.
        """
        if index == 0:
            return self.step(number)
        key = (number, index)
        if key not in self._variants:
            step = self.campaign.step(number)
            if not 0 <= index < len(step.subjects):
                raise CampaignError(f"step {step.name} has no subject variant {index + 1}")
            variant = replace(step, subject=step.subjects[index])
            self._variants[key] = self._compile(variant, line_of_key(step.path, "subjects"))
        return self._variants[key]

    def compile_all(self) -> list[CompiledStep]:
        return [self.step(step.number) for step in self.campaign.steps]


def _open_block_line(source: str, err: TemplateSyntaxError) -> int:
    """Where to point for a syntax error: an unclosed block's opening line, else Jinja's line.

    Jinja reports an unclosed ``{% if %}`` at the end of the template, far from the
    line that needs fixing.
    """
    match = re.search(r"innermost block that needs to be closed is '(\w+)'", err.message or "")
    if match:
        opened = [
            number
            for number, text in enumerate(source.splitlines(), start=1)
            if re.search(r"\{%-?\s*" + match.group(1) + r"\b", text)
        ]
        if opened:
            return opened[-1]
    return err.lineno


@lru_cache(maxsize=16)
def _date_header(when: datetime) -> bytes:
    """The ``Date:`` header line for ``when`` (RFC 5322 3.3); a pass stamps every message
    with the same time, so it is formatted once."""
    return f"Date: {format_datetime(when.astimezone(UTC))}\r\n".encode()


def layout_place(
    err: RenderBudgetExceeded, campaign: Campaign, templates_dir: Path
) -> tuple[Path, int | None]:
    """(file, line) to name for a layout that ran out of time while it compiled: the
    template file being compiled (the layout, or a file it includes) and the line Jinja
    was working out, else the campaign's HTML layout."""
    if err.template is None:
        return templates_dir / f"{campaign.layout}.html", None
    return templates_dir / err.template, err.template_line


def _front_matter_key(step: Step, what: str) -> str:
    """The front-matter key that holds ``what`` (A/B variants live in ``subjects``)."""
    return "subjects" if what == "subject" and step.subjects else what


# A template tag as written: {{ expression }} or {% statement %}, over lines too.
_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def _markdown_line(step: Step, source: str, line: int) -> int:
    """The step file's line for ``line`` of ``source``, the step's body compiled from
    Markdown (where Jinja's line numbers point).

    Markdown keeps template tags as written and in order (dripline.markdown), so the
    first tag on that line is the same tag, by its rank among tags of the same text, in
    the file; a line inside a tag that spans lines keeps its distance from the tag's
    start. Else where the body starts.
    """
    starts = [0, *(m.end() for m in re.finditer("\n", source))]
    if not 0 < line <= len(starts):
        return step.body_line
    begin = starts[line - 1]
    end = starts[line] if line < len(starts) else len(source) + 1
    for tag in _TAG.finditer(source):
        if tag.end() <= begin:
            continue
        if tag.start() >= end:
            break
        index = -1
        for _ in range(source.count(tag.group(), 0, tag.start()) + 1):
            index = step.body.find(tag.group(), index + 1)
            if index < 0:
                return step.body_line
        into = source.count("\n", tag.start(), max(begin, tag.start()))
        return step.body_line + step.body.count("\n", 0, index) + into
    return step.body_line


class CompiledStep:
    """One step, parsed and ready: ``render`` (full path) and ``render_bytes`` (fast path)."""

    def __init__(self, renderer: CampaignRenderer, step: Step) -> None:
        self.renderer = renderer
        self.campaign = renderer.campaign
        self.step = step
        envs = renderer.envs
        self.body_source = add_link_tracking(
            markdown_to_html_template(step.body), self.campaign.utm
        )
        # The step's tracked URLs (UTM parameters included), by position; the body links
        # to tracked_links[N], each recipient's own signed redirect.
        self.tracked_urls: tuple[str, ...] = ()
        if self.campaign.tracking.clicks:
            self.body_source, urls = track_links(self.body_source)
            self.tracked_urls = tuple(urls)
        if self.campaign.tracking.opens:
            self.body_source += OPEN_PIXEL
        self._subject = self._compile(envs.text, step.subject, "subject")
        self._preheader = self._compile(envs.text, step.preheader, "preheader")
        self._body = self._compile(envs.html, self.body_source, "body")
        body_cycle = template_cycle(envs.html, self._referenced(envs))
        if body_cycle:
            text = step.path.read_text(encoding="utf-8")
            renderer.check_cycle(["(this email)", *body_cycle], step.path, text)
        self._layout_html = envs.html.get_template(f"{self.campaign.layout}.html")
        self._layout_text = envs.text.get_template(f"{self.campaign.layout}.txt")
        self.static_context = step_context(self.campaign, step)
        self.boundary = f"==dripline-{uuid.uuid4().hex}=="
        campaign = self.campaign
        try:
            self._static_from = encode_address("From", campaign.from_name, campaign.from_address)
            self._static_reply_to = (
                encode_address("Reply-To", "", campaign.reply_to) if campaign.reply_to else b""
            )
            self._static_tail = (
                encode_list_id(campaign.name, f"{campaign.slug}.{renderer.list_domain}")
                + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                + multipart_head(self.boundary)
            )
        except RenderError as err:  # the campaign's name or sender cannot be a header
            raise CampaignError(err.message, path=campaign.toml_path) from err

    def _compile(self, env: Any, source: str, what: str) -> Any:
        try:
            if what == "body":
                # Check the Markdown as written so errors point at its lines.
                env.parse(self.step.body)
            return env.from_string(source)
        except TemplateSyntaxError as err:
            line = err.lineno
            if what == "body":
                line = self.step.body_line + _open_block_line(self.step.body, err) - 1
            else:
                line = line_of_key(self.step.path, self._key(what))
            raise CampaignError(
                f"template error in the {what}: {err.message}", path=self.step.path, line=line
            ) from err

    def _referenced(self, envs: Environments) -> list[str]:
        """Templates the step's own text includes or extends by name."""
        tree = envs.html.parse(self.body_source)
        return [name for name in meta.find_referenced_templates(tree) if isinstance(name, str)]

    def _over_budget(self, err: RenderBudgetExceeded) -> RenderBudgetExceeded:
        """Point at the template that was running: a layout file, or this step's file."""
        if err.template is not None:
            where = self.renderer.templates_dir / err.template
            return RenderBudgetExceeded(err.message, path=where, line=err.template_line)
        # The body is compiled from Markdown, so its lines differ from the file's: point at
        # the first loop of the step, the likely culprit, else where the body starts.
        match = re.search(r"\{%-?\s*for\b", self.step.body)
        offset = self.step.body.count("\n", 0, match.start()) if match else 0
        line = self.step.body_line + offset
        return RenderBudgetExceeded(err.message, path=self.step.path, line=line)

    def _fail(self, err: Exception, what: str) -> RenderError:
        """The error for ``err``, raised while rendering ``what`` ("subject", "preheader",
        "body" or "layout"): at the template file and line that failed, else at the step
        file's line for that part, else the step file alone."""
        # A template file that is not one (a folder, a pipe) names itself: no class name.
        kind = "" if isinstance(err, TemplateError | DriplineError) else f"{type(err).__name__}: "
        path, line = self.step.path, None
        failed = failing_template_line(err)
        if failed is not None and failed[0] != "<template>":
            path, line = Path(failed[0]), failed[1]  # a layout or a file it includes
        elif failed is not None and what != "layout":  # the step's own subject, preheader, body
            source = self.body_source if what == "body" else None
            path, line = self.renderer.runaway_place(self.step, (None, failed[1], what, source))
        return RenderError(f"cannot render: {kind}{err}", path=path, line=line)

    def _file_error(self, err: TemplateSyntaxError | TemplateNotFound) -> CampaignError:
        if isinstance(err, TemplateNotFound):
            return CampaignError(f"template not found: {err.name}", path=self.step.path)
        where = Path(err.filename) if err.filename else self.step.path
        return CampaignError(f"template error: {err.message}", path=where, line=err.lineno)

    # -- the full path -----------------------------------------------------------------

    def head(self, recipient: Recipient, subject: str, when: datetime, message_id: str) -> bytes:
        """The header block of one message (both paths), ending with its blank line.

        Raises:
            RenderError: a header would hold a line break, a control or invisible
                character, or the address is not deliverable.
        """
        try:
            subject_line = encode_header("Subject", subject)
        except RenderError as err:
            raise self._subject_error(err) from err
        return (
            self._static_from
            + encode_address("To", display_name(recipient), recipient.email)
            + self._static_reply_to
            + subject_line
            + _date_header(when)
            + raw_header("Message-ID", message_id)
            + raw_header("List-Unsubscribe", self.list_unsubscribe(recipient.unsubscribe_url))
            + self._static_tail
        )

    def check_subject(self, subject: str) -> str:
        """``subject`` if a header may carry it; else the error names the step's subject line."""
        try:
            return check_header_value("Subject", subject)
        except RenderError as err:
            raise self._subject_error(err) from err

    def _subject_error(self, err: RenderError) -> RenderError:
        error = type(err)(
            f"cannot render: {err.message}",
            path=self.step.path,
            line=line_of_key(self.step.path, self._key("subject")),
        )
        return error

    def _key(self, what: str) -> str:
        return _front_matter_key(self.step, what)

    def list_unsubscribe(self, url: str) -> str:
        mailto = f"<mailto:{self.campaign.from_address}?subject=unsubscribe>"
        return f"<{url}>, {mailto}" if url else mailto

    def render(
        self,
        recipient: Recipient,
        *,
        now: datetime | None = None,
        message_id: str | None = None,
    ) -> RenderedEmail:
        """Render one message the full way (Jinja, premailer, text, MIME)."""
        when = now or datetime.now(UTC)
        message_id = message_id or new_message_id(self.renderer.domain)
        raw_fields = dict(recipient.fields)
        budget = TimeBudget(self.renderer.render_budget)
        try:
            return self._render(recipient, when, message_id, raw_fields, budget)
        except RenderBudgetExceeded as err:
            raise self._over_budget(err) from err

    def _render(
        self,
        recipient: Recipient,
        when: datetime,
        message_id: str,
        raw_fields: dict[str, Any],
        budget: TimeBudget,
    ) -> RenderedEmail:
        stage = ["subject"]  # what is rendering, for an error's line
        try:
            context = self._context(recipient, raw_fields)
            with budget.watch():
                subject, shown_subject, preheader, body_html, document = self._templates(
                    recipient, raw_fields, context, stage
                )
            # No template code runs in CSS inlining and text conversion: outside the watch.
            html = inline_css(document)
            body_text = html_to_text(body_html)
            stage[0] = "layout"
            with budget.watch():
                text = self._layout_text.render(
                    **context,
                    subject=shown_subject,
                    preheader=preheader,
                    body_text=body_text,
                )
        except RenderError:
            raise
        except (TemplateSyntaxError, TemplateNotFound) as err:
            # A file the layout or step includes or imports (compiled as it renders) is
            # broken or missing: the campaign's files, not this subscriber's data.
            raise self._file_error(err) from err
        except Exception as err:  # Jinja's, or what a filter raised on subscriber data
            raise self._fail(err, stage[0]) from err
        head = self.head(recipient, subject, when, message_id)
        data = head + multipart_body(self.boundary, [qp_encode(flow_text(text))], [qp_encode(html)])
        return RenderedEmail(self.step, recipient.email, message_id, subject, html, text, data)

    def _context(self, recipient: Recipient, raw_fields: dict[str, Any]) -> dict[str, Any]:
        # Bodies see cleaned values everywhere, the subject in <title> included.
        return {
            **self.static_context,
            "subscriber": {**clean_fields(raw_fields), "email": recipient.email},
            **self.tracking_context(recipient),
        }

    def tracking_context(self, recipient: Recipient) -> dict[str, Any]:
        """The per-delivery link values: unsubscribe, tracked links, open image."""
        links = recipient.links or self.tracked_urls
        if len(links) != len(self.tracked_urls):
            raise RenderError(
                f"{len(links)} tracked links given for {len(self.tracked_urls)} in the step",
                path=self.step.path,
            )
        return {
            "unsubscribe_url": recipient.unsubscribe_url,
            "tracked_links": links,
            "open_pixel_url": recipient.open_url or _BLANK_IMAGE,
        }

    def _templates(
        self,
        recipient: Recipient,
        raw_fields: dict[str, Any],
        context: dict[str, Any],
        stage: list[str],
    ) -> tuple[str, str, str, str, str]:
        """(subject, subject as shown in the body, preheader, body HTML, HTML document);
        ``stage[0]`` says which part is rendering."""
        subject = self._subject.render(
            **self.static_context,
            subscriber={**raw_fields, "email": recipient.email},
            **self.tracking_context(recipient),
        )
        self.check_subject(subject)
        shown_subject = self._subject.render(**context)
        stage[0] = "preheader"
        preheader = self._preheader.render(**context)
        stage[0] = "body"
        body_html = self._body.render(**context)
        stage[0] = "layout"
        document = self._layout_html.render(
            **context, subject=shown_subject, preheader=preheader, body=Markup(body_html)
        )
        return subject, shown_subject, preheader, body_html, document

    # -- the fast path -----------------------------------------------------------------

    @cached_property
    def slotted(self) -> SlottedStep | None:
        """The step pre-rendered with slot markers, or None when it must take the full path."""
        return SlottedStep.build(self)

    def render_bytes(
        self,
        recipient: Recipient,
        *,
        now: datetime | None = None,
        message_id: str | None = None,
    ) -> tuple[str, bytes]:
        """(Message-ID, message bytes) for one recipient, by substitution when possible."""
        when = now or datetime.now(UTC)
        message_id = message_id or new_message_id(self.renderer.domain)
        slotted = self.slotted
        if slotted is not None:
            data = slotted.render(recipient, when, message_id)
            if data is not None:
                return message_id, data
        return message_id, self.render(recipient, now=when, message_id=message_id).data
