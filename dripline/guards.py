"""Guard rails: what keeps a half-finished campaign, or links to nowhere, from real inboxes.

- **Placeholders.** ``dripline import-article`` writes ``EDIT ME`` values (the sender,
  the postal address) for a person to fill in. ``dripline check`` reports each as an
  error naming its file and line; ``dripline run`` never sends such a campaign.
- **Example addresses.** A sender or Reply-To address at a domain reserved for
  documentation (``example.com/.net/.org``, RFC 2606; ``.test``, ``.example``,
  ``.invalid``, ``.localhost``, RFC 6761) is a warning in ``check`` and an error in
  ``run`` unless explicitly allowed (``--allow-example-addresses``; the demo does) or
  the sender reaches no one (``console:``, ``memory:``).
- **Links.** Real mail carries unsubscribe links under ``DRIPLINE_BASE_URL``: ``run`` and
  ``send-test`` refuse to start unless it is an ``https://`` address, the sender reaches
  no one (``console:``, ``memory:``) or ``--allow-local-links`` says so.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ._keys import key_line
from .campaign import Campaign, campaign_slugs, load_campaign, read_utf8
from .errors import CampaignError, ConfigError, DriplineError
from .settings import Settings, redact_url

__all__ = [
    "PLACEHOLDER",
    "Problem",
    "base_url_problem",
    "blocking_problems",
    "campaign_problems",
    "campaign_readiness",
    "is_reserved_domain",
    "public_base_url_problem",
    "ready_to_send",
    "require_public_links",
    "unready_campaigns",
]

#: What the article importer writes where a person must fill something in.
PLACEHOLDER = "EDIT ME"
_PLACEHOLDER = re.compile(r"(?i)\bedit[ _-]?me\b")
_RESERVED_SECOND_LEVEL = frozenset({"example.com", "example.net", "example.org"})  # RFC 2606
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})  # RFC 2606, RFC 6761

# campaign.toml values a person fills in: (table, key) -> what belongs there.
_FILLED_IN = {
    ("", "name"): "the campaign's name",
    ("from", "name"): "the sender's name, as inboxes show it",
    ("from", "address"): "the address the campaign is sent from",
    ("", "reply_to"): "the address replies go to",
    ("footer", "postal_address"): "your real postal address (the law requires one in "
    "commercial email)",
    ("footer", "disclaimer"): "the disclaimer shown under every email",
}


@dataclass(frozen=True)
class Problem:
    """Something that must not reach subscribers; ``kind`` is "placeholder" or "example"."""

    kind: str
    message: str
    path: Path
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"


def is_reserved_domain(domain: str) -> bool:
    """True for domains reserved for documentation and testing (RFC 2606, RFC 6761)."""
    name = domain.strip().rstrip(".").lower()
    labels = name.split(".")
    return labels[-1] in _RESERVED_TLDS or ".".join(labels[-2:]) in _RESERVED_SECOND_LEVEL


def _campaign_values(campaign: Campaign) -> dict[tuple[str, str], str | None]:
    return {
        ("", "name"): campaign.name,
        ("from", "name"): campaign.from_name,
        ("from", "address"): campaign.from_address,
        ("", "reply_to"): campaign.reply_to,
        ("footer", "postal_address"): campaign.postal_address,
        ("footer", "disclaimer"): campaign.disclaimer,
    }


def _dotted(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def campaign_problems(campaign: Campaign) -> list[Problem]:
    """Placeholders left in the campaign and example-domain sender addresses, in file order."""
    toml_text = read_utf8(campaign.toml_path)
    problems: list[Problem] = []
    for (table, key), value in _campaign_values(campaign).items():
        if not value:
            continue
        line = key_line(toml_text, key, table or None)
        name = _dotted(table, key)
        if _PLACEHOLDER.search(value):
            problems.append(
                Problem(
                    "placeholder",
                    f"{name} is still a placeholder ({value!r}): fill in "
                    f"{_FILLED_IN[(table, key)]}",
                    campaign.toml_path,
                    line,
                )
            )
        elif "@" in value and key in ("address", "reply_to"):
            domain = value.rpartition("@")[2]
            if is_reserved_domain(domain):
                problems.append(
                    Problem(
                        "example",
                        f"{name} {value} is at {domain}, a domain reserved for examples "
                        "(RFC 2606, RFC 6761): replies and bounces go nowhere; use a real "
                        "address",
                        campaign.toml_path,
                        line,
                    )
                )
    problems.sort(key=lambda problem: problem.line or 0)
    for step in campaign.steps:
        text = read_utf8(step.path)
        for what, value in (("subject", step.subject), ("preheader", step.preheader)):
            if _PLACEHOLDER.search(value):
                problems.append(
                    Problem(
                        "placeholder",
                        f"the {what} is still a placeholder ({value!r}): write it",
                        step.path,
                        key_line(text, what, first_line=1),
                    )
                )
        found = _PLACEHOLDER.search(step.body)
        if found:
            line = step.body_line + step.body.count("\n", 0, found.start())
            problems.append(
                Problem(
                    "placeholder",
                    f"the email still holds a placeholder ({found.group(0)!r}): write that part",
                    step.path,
                    line,
                )
            )
    return problems


def blocking_problems(
    campaign: Campaign, *, allow_example_addresses: bool = False
) -> list[Problem]:
    """The problems that keep ``campaign`` from being sent."""
    return [
        problem
        for problem in campaign_problems(campaign)
        if problem.kind != "example" or not allow_example_addresses
    ]


def ready_to_send(campaign: Campaign, *, allow_example_addresses: bool = False) -> None:
    """Raise :class:`CampaignError` (file:line) if the campaign must not be sent as it is."""
    for problem in blocking_problems(campaign, allow_example_addresses=allow_example_addresses):
        raise CampaignError(f"not sent: {problem.message}", path=problem.path, line=problem.line)


def unready_campaigns(
    campaigns_dir: Path, *, allow_example_addresses: bool = False
) -> list[Problem]:
    """Every problem that keeps a campaign under ``campaigns_dir`` from being sent.

    A campaign that does not load at all is left to the dispatcher, which defers its
    deliveries until the files are fixed (and ``dripline check`` names the mistake).
    """
    found: list[Problem] = []
    for problems in campaign_readiness(
        campaigns_dir, allow_example_addresses=allow_example_addresses
    ).values():
        found += problems
    return found


def campaign_readiness(
    campaigns_dir: Path, *, allow_example_addresses: bool = False
) -> dict[str, list[Problem]]:
    """Each campaign under ``campaigns_dir`` that loads -> what keeps it from being sent
    (empty: ready). Campaigns that do not load are left out (see :func:`unready_campaigns`)."""
    found: dict[str, list[Problem]] = {}
    for slug in campaign_slugs(campaigns_dir):
        try:
            campaign = load_campaign(campaigns_dir / slug)
        except DriplineError:
            continue
        found[slug] = blocking_problems(campaign, allow_example_addresses=allow_example_addresses)
    return found


def _is_this_machine(host: str) -> bool:
    """True for ``localhost`` (RFC 6761), loopback and unspecified addresses."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def base_url_problem(base_url: str) -> str | None:
    """What makes ``base_url`` unusable as the prefix of links in email, or None.

    Checked (RFC 3986 parts): an ``http``/``https`` scheme and a host; no user name or
    password (every email would show it), no query and no fragment (``/u/TOKEN`` is
    appended to the path).
    """
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as err:
        return f"is not a valid URL ({err})"
    if parts.scheme.lower() not in ("http", "https"):
        return "must start with https:// (or http://)"
    if not parts.hostname:
        return "has no host name"
    if parts.username is not None or parts.password is not None:
        return "holds a user name or password, which every email would show"
    if parts.query or base_url.rstrip("/").endswith("?"):
        return "has a query (?...): links are made by adding /u/TOKEN to its path"
    if parts.fragment or "#" in base_url:
        return "has a fragment (#...): links are made by adding /u/TOKEN to its path"
    return None


def public_base_url_problem(base_url: str) -> str | None:
    """Like :func:`base_url_problem`, and also: not ``https://``, or a host on this machine."""
    problem = base_url_problem(base_url)
    if problem is not None:
        return problem
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "https":
        return "is not https://"
    if _is_this_machine(parts.hostname or ""):
        return f"points at this machine ({parts.hostname})"
    return None


def require_public_links(
    base_url: str,
    *,
    reaches_recipients: bool,
    allow_local: bool,
    source: str | None = None,
) -> None:
    """Refuse to send real mail whose links (unsubscribe first) would lead nowhere.

    Raises :class:`ConfigError` naming ``source`` (what set the base URL:
    ``DRIPLINE_BASE_URL`` or a dripline.toml line; None: nothing did) when it is malformed (see
    :func:`base_url_problem`, always), or, when the sender reaches people and
    ``allow_local`` (``--allow-local-links``) is not set, when it is not ``https://``
    or names this machine.
    """
    shown = redact_url(base_url)
    unset = source is None and base_url == Settings.base_url
    source = source or "DRIPLINE_BASE_URL"
    problem = base_url_problem(base_url)
    if problem is not None:
        raise ConfigError(f"{source} {problem}: {shown!r}")
    if not reaches_recipients or allow_local:
        return
    problem = public_base_url_problem(base_url)
    if problem is None:
        return
    if unset:
        state = "is not set"
    elif problem == "is not https://":
        state = f"is {shown!r}, not https://"
    else:
        state = f"is {shown!r}, which {problem}"
    raise ConfigError(
        f"{source} {state}: unsubscribe links in these emails would point at "
        f"{shown}, which subscribers cannot reach. Set DRIPLINE_BASE_URL (or base_url in "
        "dripline.toml) to the https:// address where `dripline serve` is reachable, or pass "
        "--allow-local-links to send to a local test inbox"
    )
