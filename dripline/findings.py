"""What ``dripline check`` and the preview report: one :class:`Finding` per problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SEVERITIES", "Finding"]

# "info" carries a measurement that is no problem (a spam score under half the threshold).
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One problem (or measurement) in a campaign, pointing at the file and line behind it.

    ``rule`` names the check (``link-scheme``, ``client-support``, ``a11y-contrast``,
    ``spam-score``...); ``clients`` lists caniemail client ids (``outlook.windows``)
    for client-support findings and is empty otherwise.
    """

    severity: str  # one of SEVERITIES
    message: str
    path: Path | None = None
    line: int | None = None
    step: int | None = None
    rule: str = "lint"
    clients: tuple[str, ...] = ()
    feature: str = ""  # the caniemail feature id of a client-support finding

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}{self.severity}: {self.message}"

    def as_json(self, campaign: str) -> dict[str, Any]:
        """The ``dripline check --json`` object (keys documented in docs/preflight.md)."""
        return {
            "campaign": campaign,
            "step": self.step,
            "file": str(self.path) if self.path is not None else None,
            "line": self.line,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "clients": list(self.clients),
        }
