"""Reading smtp:// URLs: defaults, options, and errors that never echo a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from sender import SenderConfigError
from sender._smtp_url import parse_smtp_url

SECRETS = {"DRIPLINE_SMTP_PASSWORD": "hunter2-very-secret"}


def test_defaults_for_a_remote_relay_require_starttls() -> None:
    config = parse_smtp_url("smtp://relay.example.com")
    assert (config.host, config.port, config.starttls) == ("relay.example.com", 25, "required")
    assert (config.connections, config.rate_per_second, config.timeout) == (1, None, 30.0)
    assert config.display_url == "smtp://relay.example.com:25"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_defaults_to_plain(host: str) -> None:
    assert parse_smtp_url(f"smtp://{host}:2525").starttls == "off"


def test_smtps_defaults_to_port_465() -> None:
    config = parse_smtp_url("smtps://mail.example.com")
    assert (config.port, config.implicit_tls) == (465, True)


def test_every_option_is_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until connect")
    config = parse_smtp_url(
        f"smtp://apikey@smtp.example.com:587?starttls=required&cafile={ca}"
        "&connections=8&rate=600/m&timeout=2.5&pipelining=off",
        secrets=SECRETS,
    )
    assert config.user == "apikey" and config.password == SECRETS["DRIPLINE_SMTP_PASSWORD"]
    assert (config.cafile, config.connections, config.timeout) == (ca, 8, 2.5)
    assert config.pipelining is False
    assert config.rate_per_second == pytest.approx(10.0)
    assert config.display_url == (
        f"smtp://apikey:***@smtp.example.com:587?cafile={ca}&connections=8&rate=10/s&pipelining=off"
    )
    assert parse_smtp_url("smtp://127.0.0.1?pipelining=ON").pipelining is True
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    ("rate", "per_second"), [("5/s", 5.0), ("120/m", 2.0), ("3600/h", 1.0), ("0.5/s", 0.5)]
)
def test_rates_in_any_unit(rate: str, per_second: float) -> None:
    config = parse_smtp_url(f"smtp://127.0.0.1?rate={rate}")
    assert config.rate_per_second == pytest.approx(per_second)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("smtp://", "needs a host"),
        ("smtp://h?rate=fast", "rate must look like"),
        ("smtp://h?rate=0/s", "rate must look like"),
        ("smtp://h?connections=0", "connections must be"),
        ("smtp://h?connections=500", "at most"),
        ("smtp://h?timeout=-1", "timeout must be"),
        ("smtp://h?starttls=maybe", "starttls must be one of"),
        ("smtps://h?starttls=off", "drop ?starttls"),
        ("smtp://h?colour=blue", "unknown option 'colour'"),
        ("smtp://h?pipelining=no", "pipelining must be on or off, not 'no'"),
        ("smtp://h/some/path", "no path"),
        ("smtp://h:99999", "not a valid SMTP URL"),
        ("smtp://h?cafile=/nonexistent/ca.pem", "not a readable file"),
        ("smtp://user@relay.example.com", "needs the password in DRIPLINE_SMTP_PASSWORD"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, complaint: str) -> None:
    with pytest.raises(SenderConfigError, match=complaint.replace("?", r"\?")):
        parse_smtp_url(url)


def test_a_password_is_never_sent_in_clear_over_the_network() -> None:
    with pytest.raises(SenderConfigError, match="without TLS"):
        parse_smtp_url("smtp://user@relay.example.com?starttls=opportunistic", secrets=SECRETS)
    # On loopback it never leaves the machine; smtps is TLS from the start.
    assert parse_smtp_url("smtp://user@127.0.0.1", secrets=SECRETS).user == "user"
    assert parse_smtp_url("smtps://user@relay.example.com", secrets=SECRETS).user == "user"


def test_a_password_in_the_url_is_masked_in_the_error() -> None:
    with pytest.raises(SenderConfigError) as err:
        parse_smtp_url("smtp://user:hunter2@relay.example.com:587?rate=bad")
    assert "hunter2" not in str(err.value)
    assert "user:***@relay.example.com" in str(err.value)
