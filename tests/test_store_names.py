"""First names from full names (nameparser), and the greeting a subscriber really gets."""

from __future__ import annotations

import email
import email.policy
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from smtp_servers import RecordingHandler, running_server

from dripline.cli import main
from dripline.store import derive_first_name
from dripline.store._names import _parsed_first, _plain_first

NAMES = [
    # (full name as people type it, the name to greet them by; "" means "there")
    ("Ada Lovelace", "Ada"),
    ("Okafor, Chidi", "Chidi"),  # Last, First
    ("van der Berg, Anna", "Anna"),  # Last, First with a particle
    ("Dr. Lena Weber", "Lena"),  # title
    ("Prof. Dr. Hans-Peter Müller", "Hans-Peter"),  # stacked titles, hyphenated name
    ("Sir Patrick Stewart", "Patrick"),
    ("Martin Luther King Jr.", "Martin"),  # suffix
    ("Lena Weber PhD", "Lena"),  # post-nominal
    ("J. Robert Oppenheimer", "Robert"),  # goes by the middle name
    ("J. R. R. Tolkien", ""),  # initials only: no first name to use
    ("Smith, J.", ""),
    ("Mr. Smith", ""),  # a title and a surname: "Hi Mr.," is worse than "Hi there,"
    ("Madonna", "Madonna"),  # single name
    ("JANE DOE", "Jane"),  # all caps
    ("MCDONALD, RONALD", "Ronald"),
    ("bob smith", "Bob"),  # all lower case
    ("Seán O'Brien", "Seán"),
    ("王 小明", "小明"),  # Chinese, family name first
    ("김민준", "민준"),  # Korean, family name first, no space
    ("王小明", ""),  # Chinese without a space: cannot be split with confidence
    ("Chidi 🌍", "Chidi"),  # emoji after the name
    ("🦄✨", ""),  # emoji only
    ("ada@example.com", ""),  # an address pasted into the name field
    ("12345", ""),
    ("", ""),
]


@pytest.mark.parametrize(("full", "first"), NAMES)
def test_first_name_from_a_full_name(full: str, first: str) -> None:
    assert derive_first_name(full) == first


def test_the_table_covers_at_least_fifteen_shapes() -> None:
    assert len(NAMES) >= 15


def test_greetings_in_sent_mail_use_the_derived_name_and_an_explicit_one_wins(
    project: Path,
) -> None:
    people = project / "people.csv"
    people.write_text(
        "email,name,first_name,subscribed_at\n"
        'chidi@example.com,"Okafor, Chidi",,2026-03-05T20:00Z\n'
        "lena@example.com,Dr. Lena Weber,,2026-03-05T20:00Z\n"
        "smith@example.com,Mr. Smith,,2026-03-05T20:00Z\n"
        "kim@example.com,Kim Jae-won,Jae,2026-03-05T20:00Z\n",
        encoding="utf-8",
    )
    env = {
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
    }
    result = CliRunner(env=env).invoke(
        main, ["import", str(people), "--campaign", "ketamine-therapy"]
    )
    assert result.exit_code == 0, result.output
    subscribed = CliRunner(env=env).invoke(
        main,
        [
            *("subscribe", "tunde@example.com", "--campaign", "ketamine-therapy"),
            *("--name", "Bakare, Tunde", "--at", "2026-03-05T20:00Z"),
        ],
    )
    assert subscribed.exit_code == 0, subscribed.output
    handler = RecordingHandler()
    now = datetime(2026, 3, 5, 20, 0, tzinfo=UTC) + timedelta(seconds=30)
    with running_server(handler) as server:
        run = CliRunner(env=env).invoke(
            main,
            [
                "run",
                "--once",
                "--now",
                now.isoformat(),
                "--sender",
                f"smtp://127.0.0.1:{server.port}",
            ],
        )
    assert run.exit_code == 0, run.output
    greetings = {}
    for received in handler.received:
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()
        greetings[received.rcpt_tos[0]] = next(
            line for line in text.splitlines() if line.startswith("Hi ")
        )
    assert greetings == {
        "chidi@example.com": "Hi Chidi,",
        "lena@example.com": "Hi Lena,",
        "smith@example.com": "Hi there,",
        "kim@example.com": "Hi Jae,",  # the first_name column wins
        "tunde@example.com": "Hi Tunde,",
    }
    with sqlite3.connect(project / "dripline.db") as conn:
        stored = dict(conn.execute("SELECT email, first_name FROM subscribers").fetchall())
    assert stored["smith@example.com"] == "" and stored["chidi@example.com"] == "Chidi"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["Ada", "Lee", "Mae", "Van", "And", "Dr", "Jr", "Bin", "E", "Y"]),
            st.text("abcdefgHIJKLmnopQRSTuvwxyz-'", min_size=1, max_size=9),
        ),
        min_size=1,
        max_size=4,
    ).map(" ".join)
)
def test_the_shortcut_for_plain_names_agrees_with_the_parser(name: str) -> None:
    plain = _plain_first(name)
    if plain is not None:
        assert plain == _parsed_first(name), name
