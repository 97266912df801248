"""Settings are built once (file, then ``DRIPLINE_*`` environment, then flags) and passed down.

Nothing below the CLI reads the environment: code that needs a setting takes a
:class:`Settings` (or the single value) as an argument.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["SETTINGS_FILE", "Settings", "load_settings", "redact_url"]

SETTINGS_FILE = "dripline.toml"


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where it runs and what it talks to."""

    root: Path = field(default_factory=Path.cwd)
    database_url: str = ""
    sender_url: str = ""
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    smtp_password: str = ""
    debug: bool = False
    # How long a dispatcher's claims stay its own without a heartbeat (dripline run --lease).
    lease_seconds: float = 60.0
    # Seconds one message render or step compile may take before the step is deferred.
    render_budget: float = 5.0
    # VERP: envelope sender local+TOKEN@domain for every message ("" = the campaign's From).
    return_path: str = ""
    imap_password: str = ""
    soft_bounce_limit: int = 3  # soft bounces within the window that suppress an address
    soft_bounce_window_days: int = 30
    # Provider webhooks (dripline serve). A PEM certificate used instead of fetching the
    # SNS SigningCertURL (tests; offline set-ups). The URL's host is checked either way.
    ses_certificate_file: str = ""
    # The SNS topic(s) allowed to post (comma-separated ARNs): anyone can have SNS sign a
    # message, so the topic is what says it is ours. Unset: /webhooks/ses is off.
    ses_topic_arn: str = ""
    postmark_webhook_user: str = ""
    postmark_webhook_password: str = ""
    sendgrid_public_key: str = ""  # base64 DER (as SendGrid shows it) or PEM
    mailgun_signing_key: str = ""

    @property
    def campaigns_dir(self) -> Path:
        return self.root / "campaigns"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def effective_database_url(self) -> str:
        """The configured database, or ``dripline.db`` in the project root."""
        return self.database_url or f"sqlite:///{(self.root / 'dripline.db').resolve()}"

    @property
    def effective_sender_url(self) -> str:
        """The configured sender, or a Maildir outbox in the project root."""
        return self.sender_url or f"maildir:{(self.root / 'outbox').resolve()}"


def redact_url(url: str) -> str:
    """Replace a password in ``scheme://user:password@host`` with ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, hostpart = rest.partition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{hostpart}"


_ENV_NAMES = {
    "root": "DRIPLINE_ROOT",
    "database_url": "DRIPLINE_DATABASE_URL",
    "sender_url": "DRIPLINE_SENDER",
    "base_url": "DRIPLINE_BASE_URL",
    "secret_key": "DRIPLINE_SECRET_KEY",
    "smtp_password": "DRIPLINE_SMTP_PASSWORD",
    "debug": "DRIPLINE_DEBUG",
    "lease_seconds": "DRIPLINE_LEASE_SECONDS",
    "render_budget": "DRIPLINE_RENDER_BUDGET",
    "return_path": "DRIPLINE_RETURN_PATH",
    "imap_password": "DRIPLINE_IMAP_PASSWORD",
    "soft_bounce_limit": "DRIPLINE_SOFT_BOUNCE_LIMIT",
    "soft_bounce_window_days": "DRIPLINE_SOFT_BOUNCE_DAYS",
    "ses_certificate_file": "DRIPLINE_SES_CERTIFICATE_FILE",
    "ses_topic_arn": "DRIPLINE_SES_TOPIC_ARN",
    "postmark_webhook_user": "DRIPLINE_POSTMARK_WEBHOOK_USER",
    "postmark_webhook_password": "DRIPLINE_POSTMARK_WEBHOOK_PASSWORD",
    "sendgrid_public_key": "DRIPLINE_SENDGRID_WEBHOOK_PUBLIC_KEY",
    "mailgun_signing_key": "DRIPLINE_MAILGUN_WEBHOOK_SIGNING_KEY",
}

# Keys dripline.toml may set. Secrets are deliberately absent: they come from the environment.
_FILE_KEYS = {"database_url", "sender_url", "base_url"}
# Keys of dripline.toml's tables, e.g. ``[sending] return_path = "bounces@example.com"``.
_FILE_TABLES = {
    "sending": {"return_path"},
    "bounces": {"soft_bounce_limit", "soft_bounce_window_days"},
    "webhooks": {
        "ses_certificate_file",
        "ses_topic_arn",
        "sendgrid_public_key",
        "postmark_webhook_user",
    },
}
_INTEGERS = {"soft_bounce_limit", "soft_bounce_window_days"}


def _coerce(name: str, value: Any, origin: str) -> Any:
    if name == "root":
        return Path(value).expanduser()
    if name == "debug":
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in {"1", "true", "yes", "on"}
    if name in ("lease_seconds", "render_budget"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise ConfigError(f"{origin}: {name} must be a positive number of seconds")
        return number
    if name in _INTEGERS:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{origin}: {name} must be a whole number, not {value!r}") from None
        if number < 1 or isinstance(value, bool):
            raise ConfigError(f"{origin}: {name} must be 1 or more, not {value!r}")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {name} must be a string")
    return value


def load_settings(
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings: defaults, then ``dripline.toml`` in the root, then environment, then flags.

    ``flags`` holds only the options the user actually gave (``None`` values are ignored).
    The root itself comes from the flag or ``DRIPLINE_ROOT`` (else the current directory),
    since it says where ``dripline.toml`` is.
    """
    env = os.environ if environ is None else environ
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    root_value = given.get("root") or env.get("DRIPLINE_ROOT") or Path.cwd()
    root = Path(root_value).expanduser().resolve()
    settings = Settings(root=root)

    settings_file = root / SETTINGS_FILE
    if settings_file.is_file():
        try:
            data = tomllib.loads(settings_file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read settings: {err}", path=settings_file) from err
        flat = {k: v for k, v in data.items() if k not in _FILE_TABLES}
        for table, keys in _FILE_TABLES.items():
            section = data.get(table, {})
            if not isinstance(section, dict):
                raise ConfigError(f"[{table}] must be a table", path=settings_file)
            flat.update({k if k in keys else f"{table}.{k}": v for k, v in section.items()})
        allowed = _FILE_KEYS | {f"[{t}] {k}" for t, keys in _FILE_TABLES.items() for k in keys}
        unknown = sorted(set(flat) - _FILE_KEYS - set().union(*_FILE_TABLES.values()))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
                path=settings_file,
            )
        settings = replace(
            settings, **{k: _coerce(k, v, str(settings_file)) for k, v in flat.items()}
        )

    from_env = {
        name: _coerce(name, env[var], var)
        for name, var in _ENV_NAMES.items()
        if name != "root" and env.get(var)
    }
    settings = replace(settings, **from_env)
    from_flags = {k: _coerce(k, v, f"--{k}") for k, v in given.items() if k != "root"}
    return replace(settings, **from_flags)
