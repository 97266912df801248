"""Settings are built once (file, then ``DRIPLINE_*`` environment, then flags) and passed down.

Nothing below the CLI reads the environment: code that needs a setting takes a
:class:`Settings` (or the single value) as an argument.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._keys import closest, key_line, suggestion, unknown_keys
from .errors import ConfigError

__all__ = ["SETTINGS_FILE", "Settings", "database_url_from", "load_settings", "redact_url"]

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
    # Seconds one message render or step compile may take: run defers the step; check,
    # render and send-test report it at its file and line.
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
    # Bearer token for POST /api/events (goal events); unset: the API answers 401 to all.
    api_token: str = ""
    # Send although links point at a non-https base URL (a local test inbox such as Mailpit).
    allow_local_links: bool = False
    # Send from (or with Reply-To) addresses at reserved example domains (example.com, .test).
    allow_example_addresses: bool = False
    # Where each setting that is not a default came from ("DRIPLINE_BASE_URL",
    # "base_url in /p/dripline.toml:3", "--db"), so an error names what the user set.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source_of(self, name: str) -> str:
        """What set setting ``name``: a dripline.toml line, a flag, else its environment name."""
        return self.sources.get(name) or _ENV_NAMES.get(name, name)

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
    "allow_local_links": "DRIPLINE_ALLOW_LOCAL_LINKS",
    "allow_example_addresses": "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES",
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
    "api_token": "DRIPLINE_API_TOKEN",
}

# Keys dripline.toml may set (any other key is an error naming its line and the closest
# known key). Secrets are deliberately absent: they come from the environment. So are the
# allow_* exceptions: a committed file must not switch off a safety check everywhere.
_FILE_KEYS = frozenset({"database_url", "sender_url", "base_url", "render_budget"})
# Keys of dripline.toml's tables, e.g. ``[sending] return_path = "bounces@example.com"``.
_FILE_TABLES: dict[str, frozenset[str]] = {
    "sending": frozenset({"return_path"}),
    "bounces": frozenset({"soft_bounce_limit", "soft_bounce_window_days"}),
    "webhooks": frozenset(
        {
            "ses_certificate_file",
            "ses_topic_arn",
            "sendgrid_public_key",
            "postmark_webhook_user",
        }
    ),
}
_INTEGERS = {"soft_bounce_limit", "soft_bounce_window_days"}
_FLAGS = frozenset({"debug", "allow_local_links", "allow_example_addresses"})


_MAX_SETTINGS_BYTES = 1024 * 1024


def _read_settings_file(path: Path) -> str:
    """dripline.toml's text; a folder, pipe or device of that name is refused unread."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError("not a regular file (a device, folder or pipe?)", path=path)
        if info.st_size > _MAX_SETTINGS_BYTES:
            raise ConfigError("the settings file is over 1 MB", path=path)
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read settings: {err.strerror}", path=path) from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"cannot read settings: {err}", path=path) from err


def _setting_suggestion(key: str, known: frozenset[str]) -> str:
    """Like :func:`suggestion`, also matching the stem of ``*_url`` keys ("sendr" is
    closest to "sender", so 'sender_url', not the [sending] table)."""
    stems = {name.removesuffix("_url"): name for name in known if name.endswith("_url")}
    match = closest(key, set(known) | set(stems))
    if match is None:
        return suggestion(key, known)
    return f"did you mean {stems.get(match, match)!r}?"


def _place(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def database_url_from(value: str, base: Path) -> str:
    """A SQLAlchemy URL as given, or a plain file path (relative to ``base``) as SQLite."""
    if "://" in value or value.startswith("sqlite:"):
        return value
    return f"sqlite:///{(base / Path(value).expanduser()).resolve()}"


def _coerce(name: str, value: Any, origin: str, base: Path) -> Any:
    if name == "root":
        return Path(value).expanduser()
    if name in _FLAGS:
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
    if name == "database_url" and value:
        return database_url_from(value, base)
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
    if settings_file.exists():
        text = _read_settings_file(settings_file)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"cannot read settings: {err}", path=settings_file) from err
        flat = {k: v for k, v in data.items() if k not in _FILE_TABLES}
        # Where each key is ("/p/dripline.toml:3"), for errors and Settings.sources.
        places = {key: _place(settings_file, key_line(text, key)) for key in flat}
        # A table's keys are also accepted at the top level, as before.
        top_known = _FILE_KEYS | set(_FILE_TABLES) | set().union(*_FILE_TABLES.values())
        for key in unknown_keys(data, top_known):
            raise ConfigError(
                f"unknown setting {key!r}; {_setting_suggestion(key, top_known)}",
                path=settings_file,
                line=key_line(text, key),
            )
        for table, keys in _FILE_TABLES.items():
            section = data.get(table, {})
            if not isinstance(section, dict):
                raise ConfigError(
                    f"[{table}] must be a table", path=settings_file, line=key_line(text, table)
                )
            for key in unknown_keys(section, keys):
                raise ConfigError(
                    f"unknown setting '{table}.{key}'; {suggestion(key, keys)}",
                    path=settings_file,
                    line=key_line(text, key, table),
                )
            flat.update(section)
            places.update({k: _place(settings_file, key_line(text, k, table)) for k in section})
        settings = replace(
            settings,
            **{k: _coerce(k, v, places[k], root) for k, v in flat.items()},
            sources={k: f"{k} in {place}" for k, place in places.items()},
        )

    here = Path.cwd()
    from_env = {
        name: _coerce(name, env[var], var, here)
        for name, var in _ENV_NAMES.items()
        if name != "root" and env.get(var)
    }
    sources = {**settings.sources, **{name: _ENV_NAMES[name] for name in from_env}}
    settings = replace(settings, **from_env, sources=sources)
    from_flags = {
        k: _coerce(k, v, f"--{k.replace('_', '-')}", here) for k, v in given.items() if k != "root"
    }
    sources = {**sources, **{k: f"--{k.replace('_', '-')}" for k in from_flags}}
    return replace(settings, **from_flags, sources=sources)
