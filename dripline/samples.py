"""Sample subscribers for rendering, linting and previews.

``campaigns/<slug>/preview.toml`` may list profiles::

    [[subscriber]]
    label = "Alex, with a first name"
    email = "alex@example.com"
    name = "Alex Rivera"
    first_name = "Alex"
    timezone = "America/Los_Angeles"
    plan = "pro"            # any other key is a custom attribute

Without that file two built-in profiles are used: one with a first name and one
without, so the fallback text (``default("there")``) is always exercised.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._keys import closest, key_line, suggestion, unknown_keys
from .campaign import Campaign, parse_toml, read_utf8
from .conditions import attribute_text
from .errors import CampaignError, DriplineError
from .render import Recipient
from .tokens import TokenPayload, open_url, sign_token, tracking_tokens, unsubscribe_url

__all__ = [
    "PREVIEW_FILE",
    "Sample",
    "load_samples",
    "non_text_values",
    "recipient_from_json",
    "sample_recipient",
]

PREVIEW_FILE = "preview.toml"
# Every top-level key preview.toml may hold; inside a [[subscriber]] any key besides the
# standard ones is a custom attribute, so only the top level can hold a typo.
PREVIEW_KEYS = frozenset({"subscriber"})
# The standard keys of a [[subscriber]] (any other key is a custom attribute).
SUBSCRIBER_KEYS = frozenset({"label", "email", "name", "first_name", "timezone"})
# Samples are never sent to real people; their links need a signature, not a secret.
PREVIEW_SIGNING_KEY = "dripline-preview-only"

_DEFAULT_PROFILES: list[dict[str, Any]] = [
    {
        "label": "Alex (has a first name)",
        "email": "alex@example.com",
        "name": "Alex Rivera",
        "first_name": "Alex",
    },
    {"label": "No first name on file", "email": "reader@example.com"},
]


@dataclass(frozen=True)
class Sample:
    label: str
    recipient: Recipient


def sample_recipient(
    fields: dict[str, Any], campaign: Campaign, base_url: str, secret_key: str = ""
) -> Recipient:
    """A recipient for previews, with a working-looking unsubscribe link."""
    fields = dict(fields)
    email = str(fields.pop("email", "reader@example.com"))
    fields.pop("label", None)
    # An opaque key, as real subscribers have: no address can be read from a token.
    key = "sample-" + hashlib.sha256(email.encode("utf-8")).hexdigest()[:12]
    token = sign_token(TokenPayload("u", key, campaign.slug, 0), secret_key or PREVIEW_SIGNING_KEY)
    pixel = ""
    if campaign.tracking.opens:  # where the real image would be (never counted: delivery 0)
        signing = tracking_tokens(secret_key or PREVIEW_SIGNING_KEY)
        pixel = open_url(base_url, signing.open(0, campaign.slug))
    return Recipient(email, fields, unsubscribe_url(base_url, token), open_url=pixel)


def _check_profile_keys(
    profiles: list[dict[str, Any]], campaign: Campaign, text: str, path: Path
) -> None:
    """A misspelt standard key ("timzone", "firstname") is an error with its line.

    Any other key is a custom attribute, so only a key close to a standard one that no
    email of the campaign mentions is taken for a typo ("did you mean 'timezone'?").
    """
    used = " ".join([step.body for step in campaign.steps] + [s.subject for s in campaign.steps])
    headers = [m.start() for m in re.finditer(r"^[ \t]*\[\[\s*subscriber\s*\]\]", text, re.M)]
    for index, profile in enumerate(profiles):
        for key in unknown_keys(profile, SUBSCRIBER_KEYS):
            match = closest(key, SUBSCRIBER_KEYS)
            if match is None or re.search(rf"\b{re.escape(key)}\b", used):
                continue  # a custom attribute
            start = headers[index] if index < len(headers) else 0
            line = key_line(text[start:], key, first_line=text.count("\n", 0, start) + 1)
            standard = ", ".join(sorted(SUBSCRIBER_KEYS))
            raise CampaignError(
                f"unknown key {key!r} in [[subscriber]] number {index + 1}; did you mean "
                f"{match!r}? (standard keys: {standard}; any other key is a custom "
                "attribute, which the emails use)",
                path=path,
                line=line,
            )


def non_text_values(campaign: Campaign) -> list[tuple[str, Path, int | None]]:
    """(message, preview.toml, line) for each sample value that is not text.

    Real subscribers' attributes are always text (CSV import, ``subscriber set`` and the
    API store text), so ``seats = 10`` in a sample hides that ``subscriber.seats > 5``
    compares text with a number for every real subscriber. ``check`` evaluates ``when``
    with the value as it would be stored (``"10"``) and says so at the value's line.
    """
    path = campaign.path / PREVIEW_FILE
    if not path.is_file():
        return []
    try:
        text = read_utf8(path)
        data = parse_toml(text, path)
    except DriplineError:
        return []  # load_samples reports it
    listed = data.get("subscriber", [])
    if not isinstance(listed, list):
        return []
    headers = [m.start() for m in re.finditer(r"^[ \t]*\[\[\s*subscriber\s*\]\]", text, re.M)]
    found = []
    for index, profile in enumerate(listed):
        if not isinstance(profile, dict):
            continue
        start = headers[index] if index < len(headers) else 0
        for key, value in profile.items():
            if isinstance(value, str) or key == "label":
                continue
            stored = attribute_text(value)
            found.append(
                (
                    f"sample value {key} = {value!r} is not text: subscribers' attributes "
                    f"are stored as text, so send time sees {stored!r} (compare numbers "
                    f"with subscriber.{key} | int); write {key} = {json.dumps(stored)}",
                    path,
                    key_line(text[start:], key, first_line=text.count("\n", 0, start) + 1),
                )
            )
    return found


def load_samples(campaign: Campaign, base_url: str, secret_key: str = "") -> list[Sample]:
    path = campaign.path / PREVIEW_FILE
    profiles = _DEFAULT_PROFILES
    if path.exists():  # read_utf8 refuses a folder or a pipe named preview.toml
        text = read_utf8(path)
        data = parse_toml(text, path)
        for key in unknown_keys(data, PREVIEW_KEYS):
            raise CampaignError(
                f"unknown key {key!r} in {PREVIEW_FILE}; {suggestion(key, PREVIEW_KEYS)} "
                "(sample subscribers are [[subscriber]] tables)",
                path=path,
                line=key_line(text, key),
            )
        listed = data.get("subscriber", [])
        if not isinstance(listed, list) or not all(isinstance(p, dict) for p in listed):
            raise CampaignError("expected [[subscriber]] tables", path=path)
        _check_profile_keys(listed, campaign, text, path)
        if listed:
            profiles = listed
    samples = []
    for index, profile in enumerate(profiles, start=1):
        if "email" not in profile:
            raise CampaignError(f"[[subscriber]] number {index} has no email", path=path)
        label = str(profile.get("label") or profile["email"])
        samples.append(Sample(label, sample_recipient(profile, campaign, base_url, secret_key)))
    return samples


def recipient_from_json(
    path: Path, campaign: Campaign, base_url: str, secret_key: str = ""
) -> Recipient:
    """``--subscriber FILE.json``: an object with email, name, first_name and any attributes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DriplineError(f"cannot read: {err.strerror}", path=path) from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        line = getattr(err, "lineno", None)
        raise DriplineError(f"invalid JSON: {err}", path=path, line=line) from err
    if not isinstance(data, dict):
        raise DriplineError("expected a JSON object with email, name, ...", path=path)
    return sample_recipient(data, campaign, base_url, secret_key)
