"""One exception root for everything dripline reports to a user.

The CLI catches :class:`DriplineError`, prints ``Error: <message>`` and exits 1
without a traceback (``--debug`` shows it). Anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CampaignError",
    "ConfigError",
    "DriplineError",
    "HeaderInjectionError",
    "RenderError",
]


class DriplineError(Exception):
    """A problem the user can fix; its text names the file and line when there is one."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}"


class ConfigError(DriplineError):
    """Settings are missing or invalid (a flag, a ``DRIPLINE_*`` variable, dripline.toml)."""


class CampaignError(DriplineError):
    """A campaign folder, its TOML or one of its Markdown emails is invalid."""


class RenderError(DriplineError):
    """An email could not be rendered for a subscriber."""


class HeaderInjectionError(RenderError):
    """A value bound for a header holds CR, LF or NUL."""
