"""``dripline check``: links a click-tracked campaign sends without tracking, and where.

Only the step's own body is tracked (each ``href`` becomes a signed ``/c/`` redirect,
see :func:`dripline.markdown.track_links`). A link the layout or an included template
adds, or one whose URL a Jinja expression makes per subscriber, goes out as written: the
server could not look it up, and tracking it would make an open redirect. Each is a
warning naming the file and line it comes from, so the author knows which clicks the
report will never show.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from .findings import Finding
from .render import CompiledStep

__all__ = ["untracked_link_findings"]

# A Markdown link or an href whose URL starts with a Jinja expression or holds one.
_MADE_BY_JINJA = re.compile(r"""\]\(\s*[^)\s]*\{[{%]|href\s*=\s*["']?[^"'\s>]*\{[{%]""", re.I)


def _line_of(path: Path, needle: str) -> int | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else None


def _where(compiled: CompiledStep, url: str) -> tuple[Path, int | None, str]:
    """(file, line, why) for an untracked link of the rendered step."""
    step = compiled.step
    needle = url.split("?")[0].split("#")[0]
    line = _line_of(step.path, needle)
    if line is not None:
        text = step.path.read_text(encoding="utf-8").splitlines()[line - 1]
        if "{{" in text or "{%" in text:
            return step.path, line, "its URL is made per subscriber by a Jinja expression"
        return step.path, line, "it is not a link of the step's body as the body is parsed"
    templates = compiled.renderer.templates_dir
    for path in sorted(templates.rglob("*")) if templates.is_dir() else []:
        if path.is_file() and path.suffix in (".html", ".htm", ".jinja", ".j2"):
            line = _line_of(path, needle)
            if line is not None:
                return path, line, f"it comes from {path.name}, not from the step's body"
    try:
        text = step.path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    match = _MADE_BY_JINJA.search(text)
    if match is not None:
        line = text.count("\n", 0, match.start()) + 1
        return step.path, line, "its URL is made per subscriber by a Jinja expression"
    return step.path, step.body_line, "it is not in the step's body as written"


def untracked_link_findings(
    compiled: CompiledStep, hrefs: list[str], unsubscribe_url: str
) -> list[Finding]:
    """Warnings for the http(s) ``hrefs`` of a rendered sample that are not tracked.

    ``hrefs`` are the rendered email's link URLs (references decoded); nothing is
    reported unless the campaign has ``[tracking] clicks = true``.
    """
    if not compiled.campaign.tracking.clicks:
        return []
    tracked = set(compiled.tracked_urls)
    found: list[Finding] = []
    for url in hrefs:
        if url in tracked or url == unsubscribe_url:
            continue
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            continue
        path, line, why = _where(compiled, url)
        shown = url if path != compiled.step.path or "Jinja" not in why else "a link"
        message = f"{shown} is not click-tracked: {why}"
        finding = Finding("warning", message, path, line, compiled.step.number, "untracked-link")
        if finding not in found:
            found.append(finding)
    return found
