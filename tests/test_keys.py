"""Typos in settings (dripline/_keys.py): an error with file:line and the closest known key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripline._keys import closest, key_line
from dripline.campaign import CAMPAIGN_KEYS, STEP_KEYS
from dripline.cli import main

TOML = "campaigns/ketamine-therapy/campaign.toml"
STEP = "campaigns/ketamine-therapy/02-treatment-resistant.md"
PREVIEW = "campaigns/ketamine-therapy/preview.toml"
SECOND = Path(__file__).resolve().parent / "fixtures" / "campaigns" / "a-welcome"


def cli(project: Path, *args: str):
    result = CliRunner().invoke(main, ["--root", str(project), *args])
    assert "Traceback" not in result.output
    return result


def edit(project: Path, name: str, old: str, new: str) -> tuple[Path, int]:
    path = project / name
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return path, text[: text.index(new)].count("\n") + 1


@pytest.mark.parametrize(
    ("name", "old", "new", "message"),
    [
        (
            TOML,
            'reply_to = "care@example.com"',
            'replyto = "care@example.com"',
            "unknown key 'replyto' in campaign.toml; did you mean 'reply_to'?",
        ),
        (
            TOML,
            'send_time = "09:00"',
            'sendtime = "09:00"',
            "unknown key 'sendtime' in [schedule]; did you mean 'send_time'?",
        ),
        (
            TOML,
            'address = "hello@example.com"',
            'adress = "hello@example.com"',
            "unknown key 'adress' in [from]; did you mean 'address'?",
        ),
        (TOML, "[footer]", "[fotter]", "unknown key 'fotter' in campaign.toml; did you mean"),
        (
            STEP,
            "preheader = ",
            "pre_header = ",
            "unknown key 'pre_header' in the front matter; did you mean 'preheader'?",
        ),
        (
            PREVIEW,
            "[[subscriber]]",
            "[[subscribers]]",
            "unknown key 'subscribers' in preview.toml; did you mean 'subscriber'?",
        ),
        (
            PREVIEW,
            'timezone = "America/New_York"',
            'timzone = "America/New_York"',
            "unknown key 'timzone' in [[subscriber]] number 2; did you mean 'timezone'?",
        ),
        (
            PREVIEW,
            'first_name = "Maria"',
            'firstname = "Maria"',
            "unknown key 'firstname' in [[subscriber]] number 1; did you mean 'first_name'?",
        ),
    ],
)
def test_an_unknown_key_names_the_line_and_the_closest_key(project, name, old, new, message):
    path, line = edit(project, name, old, new)
    result = cli(project, "check")
    assert result.exit_code == 1
    errors = [ln for ln in result.output.splitlines() if ": error: " in ln]
    assert len(errors) == 1, result.output
    assert errors[0].startswith(f"{path}:{line}: error: {message}"), errors[0]


def test_an_unknown_setting_in_dripline_toml_is_refused_with_its_line(project):
    (project / "dripline.toml").write_text(
        'sender_url = "maildir:outbox"\nbase_ulr = "https://news.example.org"\n'
    )
    result = cli(project, "check")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {project / 'dripline.toml'}:2: unknown setting 'base_ulr'; "
        "did you mean 'base_url'?\n"
    )


def test_keys_other_features_read_are_known(project):
    """Holidays, lint thresholds and step ids belong to other features: no typo errors."""
    edit(project, TOML, 'weekdays = ["mon"', 'holidays = "US"\nweekdays = ["mon"')
    edit(project, STEP, "day = 2", 'day = 2\nid = "treatment-resistant"\nbackfill = true')
    with (project / TOML).open("a", encoding="utf-8") as handle:
        handle.write('\n[lint]\nspam_threshold = 5.0\nclients = ["gmail"]\n')
    result = cli(project, "check", "ketamine-therapy")
    assert "unknown key" not in result.output
    assert {"holidays", "holidays_default"} <= CAMPAIGN_KEYS["schedule"]
    assert {"id", "backfill"} <= STEP_KEYS


@pytest.mark.parametrize("command", [["check"], ["render", "--out", "out"]])
def test_an_unknown_slug_lists_the_campaigns_and_suggests_the_closest(project, command):
    shutil.copytree(SECOND, project / "campaigns" / SECOND.name)
    result = cli(project, command[0], "ketamine-terapy", *command[1:])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: no campaign 'ketamine-terapy' under {project / 'campaigns'}; did you mean "
        "'ketamine-therapy'? (campaigns: a-welcome, ketamine-therapy)\n"
    )
    far = cli(project, command[0], "zzz", *command[1:])
    assert "did you mean" not in far.output
    assert "(campaigns: a-welcome, ketamine-therapy)" in far.output


def test_closest_and_key_line():
    assert closest("replyto", CAMPAIGN_KEYS[""]) == "reply_to"
    assert closest("Reply_To", CAMPAIGN_KEYS[""]) == "reply_to"
    assert closest("zebra", CAMPAIGN_KEYS[""]) is None
    text = 'name = "a"\n[from]\nname = "b"\n[footer]\nnome = "c"\n'
    assert key_line(text, "name", "from") == 3
    assert key_line(text, "nome", "footer") == 5
    assert key_line(text, "nome", "from") is None  # not in [from]
    assert key_line(text, "footer") == 4


def test_custom_attributes_of_sample_subscribers_are_not_typos(project):
    """A [[subscriber]] key the emails use is a custom attribute, even if close to a
    standard one; one far from every standard key is an attribute too."""
    edit(project, PREVIEW, 'first_name = "Maria"', 'first_name = "Maria"\nnames = "M"\nplan = 1')
    edit(project, STEP, "## High Efficacy", "{{ subscriber.names }}\n\n## High Efficacy")
    result = cli(project, "check", "ketamine-therapy")
    assert "unknown key" not in result.output, result.output


@pytest.mark.parametrize(("key", "meant"), [("sendr", "sender_url"), ("databse", "database_url")])
def test_a_settings_typo_is_matched_against_the_url_keys_stems(project, key, meant):
    (project / "dripline.toml").write_text(f'{key} = "console:"\n')
    result = cli(project, "check")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {project / 'dripline.toml'}:1: unknown setting {key!r}; did you mean {meant!r}?\n"
    )


def test_a_misspelt_command_names_the_closest_one(project):
    result = cli(project, "send-tst")
    assert result.exit_code == 2
    assert "Error: No such command 'send-tst'; did you mean 'send-test'?" in result.output
