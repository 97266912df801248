"""The report's A/B subject results: per variant, sent, people's clicks, rate and its 95%
Wilson score interval, and the one decision (which won, or no significant difference;
when, on what counts) or none yet.

A variant's rate is people's unique clicks per message sent (the numbers the winner is
judged on, :mod:`dripline.experiments`), not per delivered like the step's own rate.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from .._stats import clicks_needed, wilson_interval
from ..campaign import Campaign
from ..store import StoredWinner, legacy_number, subject_key
from ..store._results_report import StepResults

__all__ = ["INTERVAL", "decided_on", "experiment_html", "experiment_json", "p_text"]

INTERVAL = "Wilson score, 95%"
NO_WINNER = (
    "No winner yet: the test is judged once, when every variant has been sent winner_after "
    "times at least the click window ago and people's clicks on them add up to 5 per "
    "variant, on those messages and clicks (two-proportion z-test, 95%); until then the "
    "split goes on."
)

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_SECTION = _ENV.from_string(
    """<section class="experiment" id="experiment-{{ s.step }}">
<h3>A/B subjects: {{ s.number or "–" }}. {{ s.step }}</h3>
<table>
<thead><tr><th scope="col">Variant</th><th scope="col">Subject</th><th scope="col">Sent</th>
<th scope="col">People's clicks</th><th scope="col">Click rate (per sent)</th>
<th scope="col">95% interval ({{ e.interval }})</th></tr></thead>
<tbody>
{% set ended = not (e.variants|selectattr("current")|list) %}
{% for v in e.variants %}<tr><th scope="row">{{ v.variant if v.current else "–" }}
{%- if e.winner and e.winner.key == v.key %} (winner){% endif %}</th>
<td>{{ v.subject or "" }}{% if not v.current and not ended %} (no longer in the step){% endif %}
{%- if v.since_winner and v.since_winner.sent %} (since the winner: {{ v.since_winner.sent }}
sent){% endif %}</td><td>{{ v.sent }}</td><td>{{ v.clicks }}</td>
<td>{{ "%.1f"|format(v.click_rate * 100) }}%</td>
<td>{{ "%.1f"|format(v.ci_low * 100) }}% to {{ "%.1f"|format(v.ci_high * 100) }}%</td></tr>
{% endfor %}</tbody>
</table>
{% if ended %}<p>The A/B test ended: the step has one subject now (the counts it had).</p>
{% elif e.winner %}<p>Winner: “{{ e.winner.subject }}”, decided
{{ e.winner.decided_at[:16].replace("T", " ") }} UTC on {{ decided_on(e.winner) }}
(z = {{ "%.2f"|format(e.winner.z) }}, {{ p_text(e.winner.p_value) }});
{% if e.split_resumed %}its text is no longer among the step's subjects, so the split
resumed.{% else %}every message of this step since carries it.{% endif %}</p>
{% elif e.judged %}<p>Judged {{ e.judged.decided_at[:10] }} on
{{ e.judged.counts|map(attribute="sent")|join("/") }} sent: no significant difference
(p = {{ "%.2g"|format(e.judged.p_value) }}); the split goes on.</p>
{% elif e.waiting_for_clicks %}<p>No winner yet: only
{{ e.variants|selectattr("current")|sum(attribute="clicks") }} people's clicks so far; the test
is judged once there are at least {{ e.clicks_needed }}.</p>
{% else %}<p>{{ no_winner }}</p>{% endif %}
</section>"""
)


def experiment_json(
    campaign: Campaign, step: StepResults, winner: StoredWinner | None
) -> dict[str, object] | None:
    """The step's ``experiment`` object of ``report --json``; None for a one-subject step.

    Variants are known by their text's key: the step's subjects as written now come first
    (numbered as in the file), then texts sent before and no longer in it (edited, removed,
    or the step back to one ``subject``), numbered as they were sent and labelled with the
    winner's text or the ledger's subject. Rows sent before keys were recorded count under
    their number in today's list. Each variant's ``since_winner`` holds the sends after the
    decision apart (in ``sent`` too, never in the decision's ``counts``).
    """
    current = campaign.step_by_id(step.step)
    subjects = current.subjects if current is not None else ()
    if not subjects and not step.variant_rows and winner is None:
        return None
    keys = [subject_key(text) for text in subjects]
    # A decision with no winner (no significant difference) splits nothing.
    won = winner if winner is not None and winner.variant is not None else None
    entries: dict[object, dict[str, Any]] = {}
    for number, (text, key) in enumerate(zip(subjects, keys, strict=True), start=1):
        entries[key] = _entry(number, text, key, current=True)
    for row in step.variant_rows:
        key = row.key
        if key is None and (number := legacy_number(row, keys)) is not None:
            key = keys[number - 1]  # sent before keys: its ledger subject, else its number
        ident: object = key if key is not None else ("number", row.variant)
        if ident not in entries:
            text = won.subject if won is not None and won.key == key else row.subject
            entries[ident] = _entry(row.variant, text, key, current=False)
        entry = entries[ident]
        entry["sent"] += row.sent
        entry["clicks"] += row.clicks
        if row.after_winner:
            entry["since_winner"]["sent"] += row.sent
            entry["since_winner"]["clicks"] += row.clicks
    variants = []
    for entry in entries.values():
        sent, clicks = entry["sent"], entry["clicks"]
        low, high = wilson_interval(clicks, sent)
        variants.append(
            {
                "variant": entry["variant"],
                "subject": entry["subject"],
                "sent": sent,
                "clicks": clicks,
                "click_rate": round(clicks / sent, 4) if sent else 0.0,
                "ci_low": round(low, 4),
                "ci_high": round(high, 4),
                "key": entry["key"],
                "current": entry["current"],
                "since_winner": entry["since_winner"] if won is not None else None,
            }
        )
    # Why there is no decision yet, when it is the clicks: the current variants have been
    # sent winner_after times but their people's clicks are too few for the z-test. (All
    # sends, not only those older than click_window: the report's figure, an estimate.)
    needed = clicks_needed(len(subjects)) if len(subjects) >= 2 else None
    current_rows = [v for v in variants if v["current"]]
    waiting = (
        winner is None
        and needed is not None
        and campaign.winner_after is not None
        and all(v["sent"] >= campaign.winner_after for v in current_rows)
        and sum(v["clicks"] for v in current_rows) < needed
    )
    return {
        "winner_after": campaign.winner_after,
        "interval": INTERVAL,
        "variants": variants,
        "winner": _winner_json(won, keys),
        "split_resumed": won is not None and won.key not in keys,
        "click_window_seconds": int(campaign.click_window.total_seconds()),
        "judged": _judged_json(winner),
        "clicks_needed": needed,
        "waiting_for_clicks": waiting,
    }


def _entry(number: int, text: str | None, key: str | None, *, current: bool) -> dict[str, Any]:
    return {
        "variant": number,
        "subject": text,
        "key": key,
        "current": current,
        "sent": 0,
        "clicks": 0,
        "since_winner": {"sent": 0, "clicks": 0},
    }


def _winner_json(winner: StoredWinner | None, keys: list[str]) -> dict[str, object] | None:
    if winner is None or winner.variant is None:  # none decided, or no significant difference
        return None
    return {
        "variant": winner.variant,
        "subject": winner.subject,
        "decided_at": winner.decided_at.isoformat(),
        "z": round(winner.z, 4),
        "p_value": winner.p_value,
        "counts": [t.as_json() for t in winner.tallies],
        "key": winner.key,
        "in_step": winner.key in keys,
    }


def p_text(p_value: float) -> str:
    """A winner's p-value as the report prints it: "p = 0.0123", or "p < 0.0001" (never
    "p = 0.0000", which reads as certainty)."""
    return "p < 0.0001" if p_value < 0.0001 else f"p = {p_value:.4f}"


def decided_on(winner: dict[str, Any]) -> str:
    """The counts a winner was decided on, the winner's first: "30 of 52 vs 4 of 48"."""
    counts = sorted(winner["counts"], key=lambda t: t["variant"] != winner["variant"])
    return " vs ".join(f"{t['clicks']} of {t['sent']}" for t in counts)


def _judged_json(decision: StoredWinner | None) -> dict[str, object] | None:
    """The one decision, a winner or not (``winner`` is the winning variant or null)."""
    if decision is None:
        return None
    return {
        "decided_at": decision.decided_at.isoformat(),
        "winner": decision.variant,
        "z": round(decision.z, 4),
        "p_value": decision.p_value,
        "counts": [t.as_json() for t in decision.tallies],
    }


def experiment_html(steps: list[dict]) -> Markup:  # type: ignore[type-arg]
    """A section per A/B step of the report's JSON ``steps`` (empty when there is none)."""
    return Markup("\n").join(
        Markup(
            _SECTION.render(
                s=s, e=s["experiment"], no_winner=NO_WINNER, decided_on=decided_on, p_text=p_text
            )
        )
        for s in steps
        if s.get("experiment")
    )
