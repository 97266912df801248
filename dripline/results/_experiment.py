"""The report's A/B subject results: per variant, sent, people's clicks, rate and its 95%
Wilson score interval, and the one decision (which won, or no significant difference;
when, on what counts) or none yet.

A variant's rate is people's unique clicks per message sent (the numbers the winner is
judged on, :mod:`dripline.experiments`), not per delivered like the step's own rate.
"""

from __future__ import annotations

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from .._stats import wilson_interval
from ..campaign import Campaign
from ..store import StoredWinner
from ..store._results_report import StepResults

__all__ = ["INTERVAL", "experiment_html", "experiment_json"]

INTERVAL = "Wilson score, 95%"
NO_WINNER = (
    "No winner yet: the test is judged once, when every variant has been sent winner_after "
    "times at least the click window ago, on those messages and people's clicks on them "
    "(two-proportion z-test, 95%); until then the split goes on."
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
{% for v in e.variants %}<tr><th scope="row">{{ v.variant }}
{%- if e.winner and e.winner.variant == v.variant %} (winner){% endif %}</th>
<td>{{ v.subject or "" }}</td><td>{{ v.sent }}</td><td>{{ v.clicks }}</td>
<td>{{ "%.1f"|format(v.click_rate * 100) }}%</td>
<td>{{ "%.1f"|format(v.ci_low * 100) }}% to {{ "%.1f"|format(v.ci_high * 100) }}%</td></tr>
{% endfor %}</tbody>
</table>
{% if e.winner %}<p>Winner: variant {{ e.winner.variant }}, “{{ e.winner.subject }}”, decided
{{ e.winner.decided_at[:16].replace("T", " ") }} UTC (z = {{ "%.2f"|format(e.winner.z) }},
p = {{ "%.4f"|format(e.winner.p_value) }}); every message of this step since carries it.</p>
{% elif e.judged %}<p>Judged {{ e.judged.decided_at[:10] }} on
{{ e.judged.counts|map(attribute="sent")|join("/") }} sent: no significant difference
(p = {{ "%.2g"|format(e.judged.p_value) }}); the split goes on.</p>
{% else %}<p>{{ no_winner }}</p>{% endif %}
</section>"""
)


def experiment_json(
    campaign: Campaign, step: StepResults, winner: StoredWinner | None
) -> dict[str, object] | None:
    """The step's ``experiment`` object of ``report --json``; None for a one-subject step."""
    current = campaign.step_by_id(step.step)
    subjects = current.subjects if current is not None else ()
    if not subjects and not step.variants and winner is None:
        return None
    numbers = sorted(set(range(1, len(subjects) + 1)) | set(step.variants))
    variants = []
    for number in numbers:
        sent, clicks = step.variants.get(number, [0, 0])
        low, high = wilson_interval(clicks, sent)
        variants.append(
            {
                "variant": number,
                "subject": subjects[number - 1] if number <= len(subjects) else None,
                "sent": sent,
                "clicks": clicks,
                "click_rate": round(clicks / sent, 4) if sent else 0.0,
                "ci_low": round(low, 4),
                "ci_high": round(high, 4),
            }
        )
    return {
        "winner_after": campaign.winner_after,
        "interval": INTERVAL,
        "variants": variants,
        "winner": _winner_json(winner),
        "click_window_seconds": int(campaign.click_window.total_seconds()),
        "judged": _judged_json(winner),
    }


def _winner_json(winner: StoredWinner | None) -> dict[str, object] | None:
    if winner is None or winner.variant is None:  # none decided, or no significant difference
        return None
    return {
        "variant": winner.variant,
        "subject": winner.subject,
        "decided_at": winner.decided_at.isoformat(),
        "z": round(winner.z, 4),
        "p_value": winner.p_value,
        "counts": [t.as_json() for t in winner.tallies],
    }


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
        Markup(_SECTION.render(s=s, e=s["experiment"], no_winner=NO_WINNER))
        for s in steps
        if s.get("experiment")
    )
