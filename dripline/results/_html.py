"""The report as one self-contained HTML page: a table of numbers and two inline SVG
charts. No script and no external resource, so it opens anywhere, offline, and can be
mailed or archived as it is."""

from __future__ import annotations

import base64
import html

from jinja2 import Environment, select_autoescape
from markupsafe import Markup

from ._charts import funnel_svg, sends_per_day_svg
from ._experiment import experiment_html
from ._report import (
    AMBIGUOUS_NOTE,
    MACHINE_NOTE,
    OPENS_NOTE,
    UNCLASSIFIED_NOTE,
    CampaignReport,
)

__all__ = ["report_body", "report_html"]

_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

_BODY = _ENV.from_string(
    """<section class="dripline-report">
<h2>Results{% if data.since %} since {{ data.since }}{% endif %}</h2>
<p>{{ t.enrolled }} enrolled, {{ t.sent }} sent,
{% if t.skipped %}{{ t.skipped }} skipped (<code>when</code> was false), {% endif -%}
{{ t.delivered }} delivered,
{{ t.clicks }} {{ "person" if t.clicks == 1 else "people" }} clicked, {{ t.conversions }} converted
{%- if data.goal %} (goal: <code>{{ data.goal }}</code>,
{{ "%.1f"|format(t.conversion_rate * 100) }}%)
{%- endif %}.
{% if t.converted_before_sending %}{{ t.converted_before_sending }} converted before
their first message was sent (in the total, in no step).
{% endif %}{% if ttc.conversions %}Median time from enrollment to conversion:
{{ ttc.median_hours }} hours.{% endif %}</p>
<table>
<thead><tr><th scope="col">Step</th><th scope="col">Sent</th>
{%- if t.skipped %}<th scope="col">Skipped (<code>when</code> false)</th>{% endif %}
<th scope="col">Delivered</th>
<th scope="col">People's clicks</th><th scope="col">Click rate</th>
<th scope="col">Machine clicks</th>
<th scope="col">Unclassified (counted as people's)</th>
{%- if data.tracking.opens %}<th scope="col">Opens (unreliable)</th>{% endif %}
<th scope="col">Unsubscribes</th><th scope="col">Bounces</th><th scope="col">Conversions</th>
<th scope="col">Ambiguous (maybe sent)</th>
</tr></thead>
<tbody>
{% for s in data.steps %}<tr><th scope="row">{{ s.number or "–" }}. {{ s.step }}
<br><small>{{ s.subject or "" }}</small></th><td>{{ s.sent }}</td>
{%- if t.skipped %}<td>{{ s.skipped }}</td>{% endif %}
<td>{{ s.delivered }}</td>
<td>{{ s.clicks }}</td><td>{{ "%.1f"|format(s.click_rate * 100) }}%</td>
<td>{{ s.machine_clicks }}</td><td>{{ s.unclassified_clicks }}</td>
{%- if data.tracking.opens %}<td>{{ s.opens }}</td>{% endif %}
<td>{{ s.unsubscribes }}</td><td>{{ s.bounces }}</td><td>{{ s.conversions }}</td>
<td>{{ s.ambiguous }}</td></tr>
{% endfor %}</tbody>
</table>
{{ experiments }}
{% if not data.tracking.clicks %}<p class="note">Click tracking is off for this campaign
(<code>[tracking] clicks = true</code> turns it on).</p>{% endif %}
<p class="note">{{ machine_note }}</p>
<p class="note">{{ unclassified_note }}</p>
<p class="note">{{ ambiguous_note }}</p>
{% if data.tracking.opens %}<p class="note">{{ opens_note }}</p>{% endif %}
<figure id="funnel-chart">{{ funnel }}<figcaption>Per step: sent, delivered, people's
clicks, conversions.</figcaption></figure>
<figure id="sends-chart">{{ sends }}<figcaption>Messages sent per day (UTC).</figcaption>
</figure>
</section>"""
)

_PAGE = _ENV.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Report: {{ name }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Arial, sans-serif; margin: 2rem;
  color: #1b1b1b; max-width: 60rem; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .6rem; text-align: right; }
th[scope=row] { text-align: left; font-weight: normal; }
.note { color: #555; font-size: .9rem; }
figure { margin: 1.5rem 0; } figure svg { max-width: 100%; height: auto; }
</style></head>
<body><h1>{{ name }}</h1>
<p class="note">Generated {{ generated }} (UTC) by <code>dripline report {{ slug }}</code>.</p>
{{ body }}
</body></html>
"""
)


def _as_image(svg: str, alt: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def report_body(report: CampaignReport, *, inline_svg: bool = True) -> Markup:
    """The report's section (numbers and charts), for a page of its own or the preview.

    ``inline_svg=False`` puts each chart in an ``<img>`` (a data: URI), for pages whose
    Content-Security-Policy forbids inline styles (the preview).
    """
    data = report.as_json()
    steps = data["steps"]
    labels = [f"{s['number'] or '–'}. {s['step']}" for s in steps]  # type: ignore[index,union-attr]
    rows = {
        name: [s[key] for s in steps]  # type: ignore[index,union-attr]
        for name, key in (
            ("sent", "sent"),
            ("delivered", "delivered"),
            ("people's clicks", "clicks"),
            ("conversions", "conversions"),
        )
    }
    funnel = funnel_svg(labels, rows, "Funnel by step")
    sends = sends_per_day_svg(report.results.sends_per_day, "Sends per day")
    if not inline_svg:
        funnel = _as_image(funnel, "Funnel by step: sent, delivered, people's clicks, conversions")
        sends = _as_image(sends, "Messages sent per day")
    return Markup(
        _BODY.render(
            data=data,
            t=data["totals"],
            ttc=data["time_to_conversion"],
            funnel=Markup(funnel),
            sends=Markup(sends),
            machine_note=MACHINE_NOTE,
            ambiguous_note=AMBIGUOUS_NOTE,
            unclassified_note=UNCLASSIFIED_NOTE,
            opens_note=OPENS_NOTE,
            experiments=experiment_html(steps),  # type: ignore[arg-type]
        )
    )


def report_html(report: CampaignReport) -> str:
    """The whole page: self-contained HTML (inline CSS and SVG, no script)."""
    return _PAGE.render(
        name=report.campaign.name,
        slug=report.campaign.slug,
        generated=report.generated_at.strftime("%Y-%m-%d %H:%M"),
        body=report_body(report),
    )
