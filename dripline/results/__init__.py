"""Results of a campaign: per-step numbers (:func:`campaign_report`), as JSON
(:meth:`CampaignReport.as_json`) and as a self-contained HTML page with charts
(:func:`report_html`), for ``dripline report`` and the preview."""

from __future__ import annotations

from ._experiment import decided_on, p_text
from ._html import report_body, report_html
from ._report import CampaignReport, campaign_report, parse_since

__all__ = [
    "CampaignReport",
    "campaign_report",
    "decided_on",
    "p_text",
    "parse_since",
    "report_body",
    "report_html",
]
