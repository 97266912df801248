"""Parsing ``smtp://`` and ``smtps://`` URLs into an :class:`SmtpConfig`.

``smtp://[user@]host[:port][?starttls=off|opportunistic|required][&cafile=PATH]
[&connections=N][&rate=N/s|N/m|N/h][&timeout=SECONDS][&pipelining=on|off]``;
``smtps://`` is the same
with implicit TLS (no ``starttls``). The password never comes from the URL: it is
``DRIPLINE_SMTP_PASSWORD`` in the ``secrets`` mapping, so a URL can always be
printed. Every error here is a :class:`SenderConfigError` that names the URL with
the password-free form.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .base import SenderConfigError

__all__ = ["PASSWORD_SECRET", "SmtpConfig", "StartTlsMode", "is_loopback", "parse_smtp_url"]

PASSWORD_SECRET = "DRIPLINE_SMTP_PASSWORD"

StartTlsMode = Literal["off", "opportunistic", "required"]
_STARTTLS_MODES: tuple[StartTlsMode, ...] = ("off", "opportunistic", "required")
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_KNOWN_OPTIONS = frozenset({"starttls", "cafile", "connections", "rate", "timeout", "pipelining"})
_SWITCH = {"on": True, "off": False}
_RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$", re.IGNORECASE)
_PASSWORD_IN_URL = re.compile(r"^([^:/?#]+://[^/?#]*?):[^/?#]*@")
_MAX_CONNECTIONS = 64  # more parallel sessions than this is abuse of anyone's relay


@dataclass(frozen=True)
class SmtpConfig:
    """Everything an SMTP connection needs, parsed and checked once."""

    scheme: Literal["smtp", "smtps"]
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # repr=False: never in a traceback
    starttls: StartTlsMode = "required"
    cafile: Path | None = None
    connections: int = 1
    rate_per_second: float | None = None
    timeout: float = 30.0
    # False: never pipeline, even with a relay that offers PIPELINING (RFC 2920), for a
    # relay that offers it and then mishandles it (as Postfix's
    # smtp_discard_ehlo_keywords = pipelining does).
    pipelining: bool = True

    @property
    def implicit_tls(self) -> bool:
        return self.scheme == "smtps"

    @property
    def display_url(self) -> str:
        """The URL with the user but never the password (``***`` marks that one is set)."""
        userinfo = ""
        if self.user is not None:
            userinfo = quote(self.user, safe="") + (":***" if self.password else "") + "@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        options: list[str] = []
        if self.scheme == "smtp" and self.starttls != _default_starttls(self.host):
            options.append(f"starttls={self.starttls}")
        if self.cafile is not None:
            options.append(f"cafile={self.cafile}")
        if self.connections != 1:
            options.append(f"connections={self.connections}")
        if self.rate_per_second is not None:
            options.append(f"rate={_format_rate(self.rate_per_second)}")
        if not self.pipelining:
            options.append("pipelining=off")
        query = ("?" + "&".join(options)) if options else ""
        return f"{self.scheme}://{userinfo}{host}:{self.port}{query}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses, where traffic never leaves the machine."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_starttls(host: str) -> StartTlsMode:
    # Loopback traffic never leaves the machine, and a local MTA's certificate is
    # typically self-signed (Debian's snakeoil): verifying it would only fail.
    return "off" if is_loopback(host) else "required"


def _format_rate(per_second: float) -> str:
    for unit, seconds in (("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        count = per_second * seconds
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}/{unit}"
    return f"{per_second:g}/s"


def _parse_rate(text: str, shown: str) -> float:
    match = _RATE_PATTERN.match(text)
    if not match or float(match.group(1)) <= 0:
        raise SenderConfigError(f"{shown}: rate must look like 10/s, 600/m or 5000/h, not {text!r}")
    return float(match.group(1)) / _RATE_UNITS[match.group(2).lower()]


def _parse_positive(text: str, what: str, shown: str, *, integer: bool) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if value <= 0:
        kind = "a whole number" if integer else "a number of seconds"
        raise SenderConfigError(f"{shown}: {what} must be {kind} above 0, not {text!r}")
    return value


def _shown(url: str) -> str:
    """The URL as it may appear in an error message: any password replaced by ``***``."""
    return _PASSWORD_IN_URL.sub(r"\1:***@", url)


def parse_smtp_url(url: str, *, secrets: Mapping[str, str] | None = None) -> SmtpConfig:
    """Check an ``smtp://`` / ``smtps://`` URL and bind the password from ``secrets``."""
    shown = _shown(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise SenderConfigError(f"{shown}: not a valid SMTP URL ({err})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise SenderConfigError(f"{shown}: an SMTP URL starts with smtp:// or smtps://")
    if parts.password is not None:
        raise SenderConfigError(
            f"{shown}: do not put the password in the URL; set {PASSWORD_SECRET} instead"
        )
    host = parts.hostname
    if not host:
        raise SenderConfigError(f"{shown}: needs a host, e.g. smtp://relay.example.com:587")
    if parts.path not in ("", "/") or parts.fragment:
        raise SenderConfigError(f"{shown}: an SMTP URL has no path, only ?options")

    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _KNOWN_OPTIONS:
            known = ", ".join(sorted(_KNOWN_OPTIONS))
            raise SenderConfigError(f"{shown}: unknown option {key!r} (known: {known})")
        options[key] = value

    starttls: StartTlsMode = _default_starttls(host)
    if "starttls" in options:
        if scheme == "smtps":
            raise SenderConfigError(f"{shown}: smtps:// is TLS from the start; drop ?starttls")
        mode = options["starttls"].lower()
        if mode not in _STARTTLS_MODES:
            raise SenderConfigError(
                f"{shown}: starttls must be one of {', '.join(_STARTTLS_MODES)}, not {mode!r}"
            )
        starttls = mode  # type: ignore[assignment]  # checked against _STARTTLS_MODES above

    cafile: Path | None = None
    if "cafile" in options:
        cafile = Path(options["cafile"]).expanduser()
        if not cafile.is_file():
            raise SenderConfigError(f"{shown}: cafile {cafile} is not a readable file")

    connections = 1
    if "connections" in options:
        connections = int(
            _parse_positive(options["connections"], "connections", shown, integer=True)
        )
        if connections > _MAX_CONNECTIONS:
            raise SenderConfigError(f"{shown}: connections is at most {_MAX_CONNECTIONS}")
    rate = _parse_rate(options["rate"], shown) if "rate" in options else None
    timeout = 30.0
    if "timeout" in options:
        timeout = _parse_positive(options["timeout"], "timeout", shown, integer=False)
    pipelining = True
    if "pipelining" in options:
        switch = options["pipelining"].lower()
        if switch not in _SWITCH:
            raise SenderConfigError(f"{shown}: pipelining must be on or off, not {switch!r}")
        pipelining = _SWITCH[switch]

    user = unquote(parts.username) if parts.username is not None else None
    password: str | None = None
    if user is not None:
        password = (secrets or {}).get(PASSWORD_SECRET) or None
        if password is None:
            raise SenderConfigError(
                f"{shown}: logging in as {user!r} needs the password in {PASSWORD_SECRET}"
            )
        if scheme == "smtp" and starttls != "required" and not is_loopback(host):
            # Without TLS the password would cross the network in clear text.
            raise SenderConfigError(
                f"{shown}: refusing to send a password without TLS; "
                "use starttls=required or smtps://"
            )

    return SmtpConfig(
        scheme=scheme,  # type: ignore[arg-type]  # checked against _DEFAULT_PORTS above
        host=host,
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        user=user,
        password=password,
        starttls=starttls if scheme == "smtp" else "off",
        cafile=cafile,
        connections=connections,
        rate_per_second=rate,
        timeout=timeout,
        pipelining=pipelining,
    )
