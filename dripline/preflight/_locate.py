"""Point a finding in the rendered HTML back at the file and line it comes from.

The sent HTML is built from two sources a person edits: the step's Markdown file
(raw HTML and inline styles written there) and the campaign's layout template
(``templates/<layout>.html``, whose ``<style>`` rules premailer inlines). A use is
searched for in the step's body first, then in the layout; what neither holds
literally (a heading Markdown made from ``##``) is pointed at the step's body.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..render import CompiledStep

__all__ = ["IGNORE_DIRECTIVE", "Locator", "Source"]

# {# caniemail-ignore css-margin css-padding: why #} in a step or layout silences those
# features' client-support warnings for what comes from that file.
IGNORE_DIRECTIVE = re.compile(r"\{#-?\s*caniemail-ignore\b(.*?)-?#\}", re.S)
_JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)
_FEATURE_ID = re.compile(r"\b(?:css|html|image)-[a-z0-9-]+[a-z0-9]")


@dataclass
class Source:
    """One file's text, from ``first_line`` on (a step's body; a layout's whole text)."""

    path: Path
    text: str
    first_line: int = 1
    ignored: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def read(cls, path: Path, first_line: int = 1) -> Source:
        try:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        except (OSError, UnicodeDecodeError):
            lines = []
        text = "".join(lines[first_line - 1 :])
        ignored = {
            feature
            for directive in IGNORE_DIRECTIVE.finditer(text)
            for feature in _FEATURE_ID.findall(directive.group(1))
        }
        # Jinja comments never reach the email: blank them (keeping lines) so "<style>" in
        # a comment is not taken for the element.
        text = _JINJA_COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
        return cls(path, text, first_line, frozenset(ignored))

    def line_of(self, pattern: str) -> int | None:
        match = re.search(pattern, self.text, re.I | re.M)
        if match is None:
            return None
        # A pattern may start with whitespace that spans blank lines ("^\s*>" before a
        # quote): the use is where its first visible character is.
        matched = match.group(0)
        start = match.start() + len(matched) - len(matched.lstrip())
        if match.groupdict().get("at") is not None:
            start = match.start("at")  # the pattern marks the use inside its context
        return self.first_line + self.text.count("\n", 0, start)


class Locator:
    """Finds where a use comes from: the step's body, else the layout, else the body's start."""

    def __init__(self, compiled: CompiledStep) -> None:
        step = compiled.step
        layout = compiled.renderer.templates_dir / f"{compiled.campaign.layout}.html"
        self.step = Source.read(step.path, step.body_line)
        self.layout = Source.read(layout)
        self._found: dict[tuple[str, ...], tuple[Source, int]] = {}

    def find(self, patterns: Sequence[str]) -> tuple[Source, int]:
        """The first place a pattern matches; patterns go from exact to loose, so an exact
        match in the layout wins over a loose one in the step."""
        key = tuple(patterns)
        if key not in self._found:
            self._found[key] = self._search(key)
        return self._found[key]

    def _search(self, patterns: tuple[str, ...]) -> tuple[Source, int]:
        for pattern in patterns:
            for source in (self.step, self.layout):
                line = source.line_of(pattern)
                if line is not None:
                    return source, line
        return self.step, self.step.first_line
