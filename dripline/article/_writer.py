"""Writing an article as a campaign folder shaped like ``campaigns/ketamine-therapy``.

Email 1 greets, gives the introduction and the first section; each later email
holds exactly one section. Subjects read "Reason k of N: <heading>", preheaders
are the section's first sentence. The folder is built next to its destination
and renamed into place, so a failed import never leaves half a campaign behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._model import Article, ArticleError
from ._wording import count_word, first_sentence, preheader, sentence_case, slugify

__all__ = ["CampaignPlan", "PlannedEmail", "plan_campaign", "toml_string", "write_campaign"]

GREETING = 'Hi {{ subscriber.first_name | default("there") }},'
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_STEP_FILE = re.compile(r"^\d{2}-[a-z0-9][a-z0-9-]*\.md$")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
                 "\r": "\\r"}  # fmt: skip
# Article text is not a template: "{{", "{%" and "{#" in it must reach the reader as written.
_JINJA_OPENERS = re.compile(r"\{([{%#])")


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string, quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _literal(markdown: str) -> str:
    return _JINJA_OPENERS.sub(lambda m: '{{ "{' + m.group(1) + '" }}', markdown)


@dataclass(frozen=True)
class PlannedEmail:
    """One email the import will write."""

    file_name: str  # NN-slug.md
    subject: str
    preheader: str
    day: int
    send_immediately: bool
    heading: str
    first_sentence: str
    body: str  # Markdown after the front matter

    def file_text(self) -> str:
        front = [
            "+++",
            f"subject = {toml_string(self.subject)}",
            f"preheader = {toml_string(self.preheader)}",
            f"day = {self.day}",
        ]
        if self.send_immediately:
            front.append('send = "immediately"')
        return "\n".join([*front, "+++", "", self.body])


@dataclass(frozen=True)
class CampaignPlan:
    """Everything an import writes, so ``--dry-run`` can show it and the writer can write it."""

    slug: str
    article: Article
    every: int
    emails: tuple[PlannedEmail, ...]
    campaign_toml: str


def _campaign_toml(article: Article, slug: str) -> str:
    return f"""\
# Imported by `dripline import-article` from {article.source.name} ({article.format}).
# EDIT ME before the first send: the sender, the postal address (the law requires a real
# one in commercial email) and the schedule. See docs/campaigns.md for every key.
name = {toml_string(article.title)}
layout = "base"          # templates/base.html + templates/base.txt
lang = "en"
# reply_to = "replies@example.com"

[from]
name = "EDIT ME: sender name"
address = "edit-me@example.com"

[links]                   # added to every link in the body, except the unsubscribe link
utm_source = "dripline"
utm_medium = "email"
utm_campaign = {toml_string(slug)}

[footer]
postal_address = "EDIT ME: company name, street address, city, postal code, country"
# disclaimer = "One paragraph shown under every email."

[schedule]
timezone = "UTC"                   # for subscribers who have no time zone of their own
send_time = "09:00"                # local time of day for every step not sent immediately
weekdays = ["mon", "tue", "wed", "thu", "fri"]
"""


def _file_slugs(article: Article) -> list[str]:
    used: set[str] = set()
    slugs = []
    for number, section in enumerate(article.sections, start=1):
        slug = slugify(section.heading) or f"reason-{number}"
        candidate, suffix = slug, 2
        while candidate in used:
            candidate, suffix = f"{slug}-{suffix}", suffix + 1
        used.add(candidate)
        slugs.append(candidate)
    return slugs


def _closing(article: Article, number: int) -> str:
    total = len(article.sections)
    if number < total:
        upcoming = sentence_case(article.sections[number].heading)
        end = "" if upcoming.endswith(("?", "!", ".")) else "."
        return f"**Next in this series:** {_literal(upcoming)}{end}"
    return f"That was the last of the {count_word(total)} reasons. Thank you for reading."


def plan_campaign(article: Article, slug: str, every: int = 2) -> CampaignPlan:
    """The campaign an import of ``article`` as ``slug`` writes, emails sent ``every`` days."""
    if not _SLUG.match(slug):
        raise ArticleError(f"the slug {slug!r} may only use a-z, 0-9 and '-' (e.g. sleep-tips)")
    if every < 1:
        raise ArticleError(f"--every must be 1 day or more, not {every}")
    total = len(article.sections)
    emails = []
    for number, (section, file_slug) in enumerate(
        zip(article.sections, _file_slugs(article), strict=True), start=1
    ):
        parts = [GREETING]
        if number == 1:
            parts.extend(_literal(block) for block in article.intro)
            if total > 1:
                parts.append(
                    f"Over the next {count_word(every * (total - 1))} days you will get one "
                    f"email for each of these {count_word(total)} reasons. Here is the first."
                )
        parts.append(f"## {_literal(section.heading)}")
        parts.extend(_literal(block) for block in section.blocks)
        parts.append(_closing(article, number))
        emails.append(
            PlannedEmail(
                file_name=f"{number:02d}-{file_slug}.md",
                # Subjects and preheaders are Jinja templates too: article text stays literal.
                subject=_literal(f"Reason {number} of {total}: {sentence_case(section.heading)}"),
                preheader=_literal(preheader(section.blocks[0])),
                day=(number - 1) * every,
                send_immediately=number == 1,
                heading=section.heading,
                first_sentence=first_sentence(section.blocks[0]),
                body="\n\n".join(parts) + "\n",
            )
        )
    return CampaignPlan(slug, article, every, tuple(emails), _campaign_toml(article, slug))


def _is_generated(path: Path) -> bool:
    return path.name == "campaign.toml" or bool(_STEP_FILE.match(path.name))


def write_campaign(plan: CampaignPlan, campaigns_dir: Path, *, force: bool = False) -> Path:
    """Write ``campaigns_dir/<slug>/``; an existing campaign is replaced only with ``force``.

    Replacing regenerates campaign.toml and the NN-*.md emails; any other file in the
    folder (notes, images) is carried over.
    """
    target = campaigns_dir / plan.slug
    if target.exists() and not force:
        raise ArticleError(
            "a campaign with this slug already exists; use --force to replace it", path=target
        )
    try:
        campaigns_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{plan.slug}.import-", dir=campaigns_dir))
    except OSError as err:
        raise ArticleError(f"cannot create the campaign: {err.strerror}", path=target) from err
    retired: Path | None = None
    try:
        os.chmod(staging, 0o755)
        (staging / "campaign.toml").write_text(plan.campaign_toml, encoding="utf-8")
        for email in plan.emails:
            (staging / email.file_name).write_text(email.file_text(), encoding="utf-8")
        if target.exists():
            for kept in target.iterdir():
                if _is_generated(kept):
                    continue
                if kept.is_dir():
                    shutil.copytree(kept, staging / kept.name)
                else:
                    shutil.copy2(kept, staging)
            retired = target.rename(staging.with_name(staging.name + "-old"))
        staging.rename(target)
    except OSError as err:
        if retired is not None and not target.exists():
            retired.rename(target)  # put the old campaign back rather than lose it
            retired = None
        shutil.rmtree(staging, ignore_errors=True)
        raise ArticleError(f"cannot write the campaign: {err}", path=target) from err
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
    return target
