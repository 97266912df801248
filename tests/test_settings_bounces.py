"""dripline.toml's [sending], [bounces] and [webhooks] tables, and their DRIPLINE_* names."""

from __future__ import annotations

from pathlib import Path

import pytest

from dripline.errors import ConfigError
from dripline.settings import load_settings


def test_tables_in_the_file_then_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "dripline.toml").write_text(
        'base_url = "https://news.example.com"\n'
        '[sending]\nreturn_path = "bounces@example.com"\n'
        "[bounces]\nsoft_bounce_limit = 5\nsoft_bounce_window_days = 10\n"
        '[webhooks]\nsendgrid_public_key = "KEY"\n'
    )
    settings = load_settings(flags={"root": str(tmp_path)}, environ={})
    assert settings.return_path == "bounces@example.com"
    assert (settings.soft_bounce_limit, settings.soft_bounce_window_days) == (5, 10)
    assert settings.sendgrid_public_key == "KEY"
    env = {"DRIPLINE_RETURN_PATH": "rp@example.org", "DRIPLINE_SOFT_BOUNCE_LIMIT": "2"}
    settings = load_settings(flags={"root": str(tmp_path)}, environ=env)
    assert settings.return_path == "rp@example.org" and settings.soft_bounce_limit == 2


def test_without_it_there_is_no_return_path(tmp_path: Path) -> None:
    assert load_settings(flags={"root": str(tmp_path)}, environ={}).return_path == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ('[sending]\nsender_url = "x"\n', "sending.sender_url"),
        ("[bounces]\nsoft_bounce_limit = 0\n", "1 or more"),
        ('[bounces]\nsoft_bounce_limit = "many"\n', "whole number"),
        ('[webhooks]\nmailgun_signing_key = "secret"\n', "webhooks.mailgun_signing_key"),
        ('sending = "x"\n', "[sending] must be a table"),
    ],
)
def test_bad_tables_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "dripline.toml").write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(flags={"root": str(tmp_path)}, environ={})
