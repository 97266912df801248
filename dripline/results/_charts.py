"""The report's charts, drawn by matplotlib as inline SVG (no script, no network).

``Figure`` objects are made directly (not through pyplot): no global state, no GUI
backend, safe in the preview's worker threads. Text stays text (``svg.fonttype =
"none"``) so the page is small and readable by screen readers and search; ids are
salted per chart so two charts in one page never share a clip-path id.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

__all__ = ["funnel_svg", "sends_per_day_svg"]

_COLOURS = {"sent": "#c9d6df", "delivered": "#7fa7c2", "clicks": "#1f5f8b", "conv": "#2e7d32"}


def _svg(figure: object, salt: str) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")  # type: ignore[attr-defined]
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # no XML declaration or DOCTYPE inside HTML


def _integer_ticks(axis: object) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))  # type: ignore[attr-defined]


def _figure(width: float, height: float) -> object:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=96)
    figure.patch.set_alpha(0)
    return figure


def funnel_svg(labels: Sequence[str], rows: dict[str, Sequence[int]], title: str) -> str:
    """Horizontal bars per step: sent, delivered, people's clicks, conversions."""
    figure = _figure(7.5, 0.55 * max(len(labels), 1) + 1.4)
    axes = figure.add_subplot()  # type: ignore[attr-defined]
    positions = list(range(len(labels)))
    height = 0.8 / max(len(rows), 1)
    for index, (name, values) in enumerate(rows.items()):
        offsets = [p - 0.4 + height * (index + 0.5) for p in positions]
        colour = list(_COLOURS.values())[index % len(_COLOURS)]
        axes.barh(offsets, list(values), height=height, label=name, color=colour)
    axes.set_yticks(positions, labels=list(labels))
    axes.invert_yaxis()
    _integer_ticks(axes.xaxis)
    axes.set_xlabel("messages / people")
    axes.set_title(title, loc="left")
    axes.legend(loc="lower right", frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure, "funnel")


def sends_per_day_svg(days: Sequence[tuple[date, int]], title: str) -> str:
    """Bars of messages sent per day (UTC)."""
    figure = _figure(7.5, 2.8)
    axes = figure.add_subplot()  # type: ignore[attr-defined]
    if days:
        axes.bar([d.isoformat() for d, _ in days], [c for _, c in days], color="#1f5f8b")
        axes.tick_params(axis="x", labelrotation=45, labelsize=8)
    else:
        axes.text(0.5, 0.5, "nothing sent yet", ha="center", va="center")
    _integer_ticks(axes.yaxis)
    axes.set_ylabel("sent")
    axes.set_title(title, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    return _svg(figure, "sends")
