"""The sign-up form's fields: what was posted, what is wrong with it, field by field.

Every check gives a sentence a visitor can act on; the form is shown again with
their values and the sentence next to the field. Names go into email bodies and
must never reach a header, but they are still refused when they hold line breaks
or control characters: no legitimate name has them, and a later template might.

How often the form may be posted is limited per IP here, in memory (a sliding
window); the per-address limit on confirmation emails lives in the database.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import DriplineError
from ..mime import header_value_problem
from ..store import NormalizedEmail, check_country, check_zone, normalize_email

__all__ = [
    "EMAIL_MAX",
    "FIRST_NAME_MAX",
    "HONEYPOT_FIELD",
    "SignupFields",
    "SlidingWindowLimiter",
    "read_signup_fields",
]

EMAIL_MAX = 254  # RFC 5321's limit on a forward path, the longest address that can be mailed
FIRST_NAME_MAX = 100  # the subscribers.first_name column
_TIMEZONE_MAX = 64
HONEYPOT_FIELD = "website"  # people never see it; form-filling bots rarely leave it empty


@dataclass
class SignupFields:
    """The posted values as typed (for showing the form again) and the checked ones."""

    email: str = ""
    first_name: str = ""
    timezone: str = ""
    country: str = ""  # ISO 3166-1 alpha-2, optional (public holidays)
    consent: bool = False
    honeypot_filled: bool = False
    errors: dict[str, str] = field(default_factory=dict)  # field name -> message
    checked_email: NormalizedEmail | None = None
    checked_zone: str | None = None
    checked_country: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _has_control_characters(text: str) -> bool:
    # Cc: C0/C1 controls (CR, LF, NUL, ESC...); Zl/Zp: Unicode line and paragraph separators.
    return any(unicodedata.category(c) in {"Cc", "Zl", "Zp"} for c in text)


def _check_email(fields: SignupFields) -> None:
    raw = fields.email.strip()
    if not raw:
        fields.errors["email"] = "Enter your email address."
    elif len(raw) > EMAIL_MAX:
        fields.errors["email"] = (
            f"That address is too long: at most {EMAIL_MAX} characters, it has {len(raw)}."
        )
    elif _has_control_characters(raw):
        fields.errors["email"] = (
            "An email address cannot contain line breaks or control characters."
        )
    elif "@" in raw and not raw.rpartition("@")[0].isascii():
        # The renderer's rule (mime.address_problem): said plainly, before anything is stored.
        fields.errors["email"] = (
            "We cannot send to an address with accented or non-Latin letters before "
            "the @ yet (most mail systems cannot either). Please use another address."
        )
    else:
        try:
            fields.checked_email = normalize_email(raw)
        except DriplineError:
            fields.errors["email"] = "Enter an email address like name@example.com."


def _check_first_name(fields: SignupFields) -> None:
    if _has_control_characters(fields.first_name):
        fields.errors["first_name"] = (
            "Your first name cannot contain line breaks or control characters."
        )
    elif "=?" in fields.first_name:
        fields.errors["first_name"] = "Your first name cannot contain the characters '=?'."
    elif (problem := header_value_problem(fields.first_name)) is not None:
        fields.errors["first_name"] = f"Your first name cannot contain {problem}."
    elif len(fields.first_name.strip()) > FIRST_NAME_MAX:
        fields.errors["first_name"] = f"That name is too long: at most {FIRST_NAME_MAX} characters."


def _check_country(fields: SignupFields) -> None:
    code = fields.country.strip()
    if not code:
        return
    try:
        fields.checked_country = check_country(code)
    except DriplineError:
        fields.errors["country"] = (
            "Enter your country as its two-letter code, such as US, DE or IN, or leave it empty."
        )


def _check_zone(fields: SignupFields) -> None:
    # Filled in by the browser, not typed: a value we do not know means "campaign default".
    zone = fields.timezone.strip()
    if not zone or len(zone) > _TIMEZONE_MAX or _has_control_characters(zone):
        return
    try:
        fields.checked_zone = check_zone(zone)
    except DriplineError:
        fields.checked_zone = None


def read_signup_fields(form: Mapping[str, object]) -> SignupFields:
    """Check a posted sign-up form; ``errors`` is empty when it can be accepted."""

    def text(name: str) -> str:
        value = form.get(name, "")
        return value if isinstance(value, str) else ""  # an uploaded file is no answer

    fields = SignupFields(
        email=text("email"),
        first_name=text("first_name"),
        timezone=text("timezone"),
        country=text("country")[:100],
        consent=text("consent") == "yes",
        honeypot_filled=bool(text(HONEYPOT_FIELD).strip()),
    )
    _check_email(fields)
    _check_first_name(fields)
    _check_zone(fields)
    _check_country(fields)
    if not fields.consent:
        fields.errors["consent"] = "Tick the box to agree to receive the emails."
    fields.first_name = " ".join(fields.first_name.split()) if fields.ok else fields.first_name
    return fields


class SlidingWindowLimiter:
    """``allow(key)`` is true for at most ``limit`` calls per ``window`` seconds per key."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > self._max_keys:
                self._forget_idle(now)
            return True

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self.window]
        for key in idle:
            del self._hits[key]
