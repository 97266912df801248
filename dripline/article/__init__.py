"""Articles to campaigns: parse an "N reasons" article and write one email per section.

The parsers (plain text copied from a page, Markdown drafts, saved HTML pages)
all produce an :class:`Article`; :func:`write_campaign` turns it into a campaign
folder in the format of ``campaigns/ketamine-therapy``.
"""

from __future__ import annotations

from pathlib import Path

from ._detect import FORMATS, detect_format, read_article_text
from ._html import parse_html
from ._markdown import parse_markdown
from ._model import Article, ArticleError, Section, announced_count
from ._text import parse_text
from ._writer import CampaignPlan, PlannedEmail, plan_campaign, write_campaign

__all__ = [
    "FORMATS",
    "Article",
    "ArticleError",
    "CampaignPlan",
    "PlannedEmail",
    "Section",
    "announced_count",
    "detect_format",
    "load_article",
    "parse_article",
    "plan_campaign",
    "write_campaign",
]

_PARSERS = {"text": parse_text, "markdown": parse_markdown, "html": parse_html}


def parse_article(text: str, source: Path, article_format: str) -> Article:
    """Parse ``text`` (read from ``source``) as ``article_format``, one of :data:`FORMATS`."""
    article = _PARSERS[article_format](text, source)
    if not article.sections:
        raise ArticleError(
            "no sections found: each reason needs a heading line before its paragraphs",
            path=source,
        )
    empty = next((s for s in article.sections if not s.blocks), None)
    if empty is not None:
        raise ArticleError(
            f"the section {empty.heading!r} has no text under its heading",
            path=source,
            line=empty.line,
        )
    return article


def load_article(path: Path) -> Article:
    """Read ``path``, detect its format and parse it."""
    text = read_article_text(path)
    return parse_article(text, path, detect_format(path, text))
