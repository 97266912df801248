"""One attribute-name rule for the CSV import and `dripline subscriber set` (the API: see
test_serve_api_names.py): every stored name is readable as `subscriber.<name>`, and a
header or key that cannot be is refused with the reason, naming the column or key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from results_support import SLUG, cli, env_for

from dripline.conditions import step_applies
from dripline.store._attribute_names import attribute_key, attribute_name_problem


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    return env_for(project, "https://news.example.com")


def attributes(env: dict[str, str], address: str) -> dict[str, str]:
    return json.loads(cli(env, "subscriber", "show", address, "--json"))["attributes"]


def test_headers_with_punctuation_map_to_names_that_set_and_when_both_use(project, env):
    people = project / "people.csv"
    people.write_text("email,Plan Type,Seats (max),já,_id\nada@example.com,team,5,x,42\n")
    cli(env, "import", str(people), "--campaign", SLUG)
    stored = attributes(env, "ada@example.com")
    assert stored == {"plan_type": "team", "seats_max": "5", "já": "x", "_id": "42"}
    # The header's own text, given to `subscriber set`, reaches the same attribute.
    cli(env, "subscriber", "set", "ada@example.com", "Seats (max)=9", "Plan-Type=solo")
    stored = attributes(env, "ada@example.com")
    assert stored == {"plan_type": "solo", "seats_max": "9", "já": "x", "_id": "42"}
    # Every stored name reads as subscriber.<name> in a `when` (and so in templates).
    when = "subscriber.seats_max == '9' and subscriber.já == 'x' and subscriber._id == '42'"
    step = type("Step", (), {"when": when, "path": Path("x.md")})
    assert step_applies(step, "ada@example.com", stored) is True


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("2fa", "column 3 ('2fa') starts with a digit"),
        ("Items", "column 3 ('Items') subscriber.items is the subscriber mapping's own"),
        ("__class__", "subscriber mapping's own '__class__'"),
        ("x" * 65, "at most 64"),
        ("(?)", "no letters or digits"),
    ],
)
def test_a_header_no_readable_name_can_be_made_of_refuses_the_file_naming_it(
    project, env, header, words
):
    people = project / "people.csv"
    people.write_text(f"email,plan,{header}\nada@example.com,pro,yes\n")
    out = cli(env, "import", str(people), "--campaign", SLUG, code=1)
    assert out.startswith("Error: ") and words in out and "Traceback" not in out
    assert "people.csv:1" in out
    assert not (project / "dripline.db").exists()  # refused before anything was stored


def stored_rows(project: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(email, status, attributes) of every subscriber, read from the SQLite file itself."""
    with sqlite3.connect(project / "dripline.db") as db:
        rows = db.execute("SELECT email, status, attributes FROM subscribers ORDER BY email")
        return [(email, status, json.loads(attrs or "{}")) for email, status, attrs in rows]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("Status", "status"),
        ("Created At", "created_at"),
        ("campaigns", "campaigns"),
        ("Attributes", "attributes"),
        ("public-key", "public_key"),
    ],
)
def test_a_column_naming_a_stored_field_refuses_the_file_before_anything_is_stored(
    project, env, header, name
):
    # A CRM export's "Status = unsubscribed" stored as an attribute left the person
    # active and mailed (probe-18c MEDIUM E); PATCH and `subscriber set` refuse the name.
    people = project / "people.csv"
    people.write_text(f"email,name,{header}\nnew@example.com,New One,unsubscribed\n")
    out = cli(env, "import", str(people), "--campaign", SLUG, code=1)
    assert out.startswith("Error: ") and "Traceback" not in out
    assert f"people.csv:1: column 3 ({header!r}) names the subscriber's stored field" in out
    assert f"{name!r}" in out and "rename the column (or remove it)" in out
    assert len(out.strip().splitlines()) == 1  # one message
    if name == "status":  # says how unsubscribes are recorded instead
        assert "dripline unsubscribe EMAIL" in out and "dripline suppress import" in out
    assert not (project / "dripline.db").exists()


def test_update_with_a_status_column_changes_no_existing_subscriber(project, env):
    cli(env, "subscribe", "ada@example.com", "--campaign", SLUG)
    before = stored_rows(project)
    people = project / "crm.csv"
    people.write_text(
        "email,plan,Status,created_at\n"
        "ada@example.com,pro,unsubscribed,2020-01-01\n"
        "bo@example.com,team,unsubscribed,2020-01-01\n"
    )
    out = cli(env, "import", str(people), "--campaign", SLUG, "--update", code=1)
    assert "crm.csv:1: column 3 ('Status')" in out
    assert stored_rows(project) == before == [("ada@example.com", "active", {})]
    # Only names that normalise to a stored field are refused: "Email Status" is an attribute.
    people.write_text("email,Email Status\nada@example.com,bounced\n")
    cli(env, "import", str(people), "--campaign", SLUG, "--update")
    assert stored_rows(project) == [("ada@example.com", "active", {"email_status": "bounced"})]


@pytest.mark.parametrize(
    ("pair", "words"),
    [
        ("items=pro", "subscriber mapping's own 'items'"),
        ("2fa=yes", "starts with a digit"),
        ("k" * 65 + "=1", "at most 64"),
        ("plan=a", None),
    ],
)
def test_subscriber_set_applies_the_same_rule(project, env, pair, words):
    cli(env, "subscribe", "ada@example.com", "--campaign", SLUG)
    if words is None:
        cli(env, "subscriber", "set", "ada@example.com", pair, "Plan=b", code=1)
        assert attributes(env, "ada@example.com") == {}
        return
    out = cli(env, "subscriber", "set", "ada@example.com", pair, code=1)
    assert out.startswith("Error: ") and words in out
    assert attributes(env, "ada@example.com") == {}


def test_the_rule_itself():
    assert attribute_key("  Sign-up  Source ") == "sign_up_source"
    assert attribute_key("Seats (max)") == "seats_max"
    assert attribute_key("a.b/c") == "a_b_c"
    assert attribute_name_problem("plan_2fa") is None
    assert attribute_name_problem("x²")  # not an identifier: Jinja cannot read it
    assert attribute_name_problem(attribute_key("Public Key"))  # a stored field
    assert attribute_name_problem(attribute_key("Email Status")) is None
