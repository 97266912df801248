"""`dripline subscriber set/show` and `dripline import --update`: attributes that change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dripline.cli import main
from dripline.conditions import step_applies
from dripline.store import (
    InvalidSubscriberError,
    NewSubscriber,
    normalize_email,
    set_subscriber_fields,
    subscribe,
    subscriber_profile,
)

ROOT = Path(__file__).resolve().parent.parent
SLUG = "ketamine-therapy"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("DRIPLINE_DATABASE_URL", "DRIPLINE_ROOT", "DRIPLINE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    return tmp_path


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--root", str(project), *args])


def show(project: Path, address: str) -> dict:
    result = run(project, "subscriber", "show", address, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def write_csv(project: Path, text: str) -> str:
    path = project / "people.csv"
    path.write_text(text)
    return str(path)


def test_set_changes_attributes_and_names_and_show_reads_them_back(project: Path):
    people = write_csv(
        project,
        "email,name,plan,country\nada@example.com,Ada Lovelace,basic,GB\n",
    )
    assert run(project, "import", people, "--campaign", SLUG).exit_code == 0
    result = run(
        project, "subscriber", "set", "ADA@example.com", "plan=pro", "seats=5", "First Name=Augusta"
    )
    assert result.exit_code == 0, result.output
    shown = show(project, "ada@example.com")
    assert shown["attributes"] == {"country": "GB", "plan": "pro", "seats": "5"}
    assert shown["first_name"] == "Augusta" and shown["name"] == "Ada Lovelace"
    assert shown["campaigns"] == {SLUG: "active"} and shown["status"] == "active"
    # An empty value removes the attribute; the table view lists what is left.
    assert run(project, "subscriber", "set", "ada@example.com", "seats=").exit_code == 0
    text = run(project, "subscriber", "show", "ada@example.com").output
    assert "plan: pro" in text and "seats" not in text


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("plan=pro\nBcc: x@evil.test", "plan"),  # a header injection, refused like in a CSV
        ("country=Narnia", "country"),
        ("timezone=Europe/Paris", "timezone cannot be changed"),
        ("email=other@example.com", "email cannot be changed"),
        ("2fa=yes", "starts with a digit"),  # subscriber.2fa could not read it
        ("plan", "expected key=value"),
        # A byte that is not UTF-8 in the shell's argument arrives as a lone surrogate.
        ("plan=\udcff", "lone surrogate (U+DCFF)"),
        ("status=unsubscribed", "status cannot be changed"),
    ],
)
def test_bad_values_are_one_error_line_and_change_nothing(project: Path, pair, message):
    people = write_csv(project, "email,plan\nada@example.com,basic\n")
    run(project, "import", people, "--campaign", SLUG)
    result = run(project, "subscriber", "set", "ada@example.com", "seats=3", pair)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output
    assert show(project, "ada@example.com")["attributes"] == {"plan": "basic"}


def test_unknown_email_is_an_error(project: Path):
    people = write_csv(project, "email\nada@example.com\n")
    run(project, "import", people, "--campaign", SLUG)
    for args in (("set", "nobody@example.com", "plan=pro"), ("show", "nobody@example.com")):
        result = run(project, "subscriber", *args)
        assert result.exit_code == 1
        assert result.output.strip() == "Error: nobody@example.com is not a subscriber"


def test_import_update_changes_existing_attributes_only_when_asked(project: Path):
    first = write_csv(
        project, "email,name,plan\nada@example.com,Ada,basic\nbob@example.com,,basic\n"
    )
    run(project, "import", first, "--campaign", SLUG)
    second = write_csv(
        project,
        "email,name,plan\nada@example.com,,pro\nbob@example.com,,basic\ncy@example.com,,pro\n",
    )
    plain = run(project, "import", second, "--campaign", SLUG)
    assert "0 existing subscriber(s) updated, 2 left as they were (--update" in plain.output
    assert show(project, "ada@example.com")["attributes"] == {"plan": "basic"}
    updated = run(project, "import", second, "--campaign", SLUG, "--update")
    assert updated.exit_code == 0, updated.output
    assert "1 existing subscriber(s) updated, 2 left as they were" in updated.output
    ada = show(project, "ada@example.com")
    assert ada["attributes"] == {"plan": "pro"} and ada["name"] == "Ada"  # empty keeps it
    assert show(project, "bob@example.com")["attributes"] == {"plan": "basic"}
    # Enrollments are untouched: still one each, no deliveries added.
    assert "3 already enrolled" in updated.output


def test_set_is_one_transaction_on_each_database(engine, timetable):
    subscribe(
        engine, timetable, "ketamine-therapy", NewSubscriber(normalize_email("ann@example.com"))
    )
    set_subscriber_fields(engine, "ann@example.com", {"plan": "pro"})
    with pytest.raises(InvalidSubscriberError):
        set_subscriber_fields(engine, "ann@example.com", {"plan": "team", "country": "ZZ"})
    assert subscriber_profile(engine, "ann@example.com").attributes == {"plan": "pro"}


def test_import_update_keeps_stored_values_for_empty_cells_and_names_not_given(project: Path):
    # Probe HIGH 1 and MEDIUM 4: a blank column must not wipe plan=pro (every `when` step
    # on it would be skipped for good), and a file with only a first-name column must not
    # replace the stored full name with it.
    first = write_csv(
        project,
        "email,name,first_name,plan,seats\nada@example.com,Ada Lovelace,Augusta,pro,5\n",
    )
    run(project, "import", first, "--campaign", SLUG)
    blank = write_csv(project, "email,name,first_name,plan,seats\nada@example.com,,,,7\n")
    assert run(project, "import", blank, "--campaign", SLUG, "--update").exit_code == 0
    ada = show(project, "ada@example.com")
    assert ada["attributes"] == {"plan": "pro", "seats": "7"}
    assert (ada["name"], ada["first_name"]) == ("Ada Lovelace", "Augusta")
    semicolons = write_csv(project, "email;plan;seats\nada@example.com;;8\n")
    assert run(project, "import", semicolons, "--campaign", SLUG, "--update").exit_code == 0
    assert show(project, "ada@example.com")["attributes"] == {"plan": "pro", "seats": "8"}
    first_only = write_csv(project, "email,First Name\nada@example.com,Annie\n")
    assert run(project, "import", first_only, "--campaign", SLUG, "--update").exit_code == 0
    ada = show(project, "ada@example.com")
    assert (ada["name"], ada["first_name"]) == ("Ada Lovelace", "Annie")
    name_only = write_csv(project, "email,name\nada@example.com,Ada King\n")
    assert run(project, "import", name_only, "--campaign", SLUG, "--update").exit_code == 0
    ada = show(project, "ada@example.com")
    assert (ada["name"], ada["first_name"]) == ("Ada King", "Annie")  # first name kept
    # Someone stored without names gets them from the file's first name.
    bare = write_csv(project, "email\nbo@example.com\n")
    run(project, "import", bare, "--campaign", SLUG)
    named = write_csv(project, "email,first_name\nbo@example.com,Bo\n")
    assert run(project, "import", named, "--campaign", SLUG, "--update").exit_code == 0
    bo = show(project, "bo@example.com")
    assert (bo["name"], bo["first_name"]) == ("Bo", "Bo")


def test_concurrent_changes_to_one_subscriber_are_all_kept(engine, timetable):
    # Probe MEDIUM 6: read-modify-write of the attributes without a row lock lost most of
    # 40 concurrent changes on PostgreSQL (the API makes concurrent changes ordinary).
    import threading

    subscribe(
        engine, timetable, "ketamine-therapy", NewSubscriber(normalize_email("cy@example.com"))
    )
    start = threading.Barrier(12)

    def change(i: int) -> None:
        start.wait(timeout=30)
        set_subscriber_fields(engine, "cy@example.com", {f"k{i}": "v"})

    threads = [threading.Thread(target=change, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert subscriber_profile(engine, "cy@example.com").attributes == {
        f"k{i}": "v" for i in range(12)
    }


def test_csv_headers_with_spaces_and_capitals_are_names_set_and_when_can_use(project: Path):
    # One rule for attribute names (probe MEDIUM 7): lower case, spaces and hyphens _.
    people = write_csv(
        project,
        "email,name,Plan Type,Sign-up  Source\nada@example.com,Ada Lovelace,team,Web Form\n",
    )
    assert run(project, "import", people, "--campaign", SLUG).exit_code == 0
    assert show(project, "ada@example.com")["attributes"] == {
        "plan_type": "team",
        "sign_up_source": "Web Form",
    }
    changed = run(project, "subscriber", "set", "ada@example.com", "Plan Type=solo")
    assert changed.exit_code == 0, changed.output
    assert show(project, "ada@example.com")["attributes"]["plan_type"] == "solo"
    removed = run(project, "subscriber", "set", "ada@example.com", "sign-up source=")
    assert removed.exit_code == 0, removed.output
    attributes = show(project, "ada@example.com")["attributes"]
    assert attributes == {"plan_type": "solo"}
    # A `when` reads it as subscriber.plan_type, with the values send time passes.
    step = type("S", (), {"when": "subscriber.plan_type == 'solo'", "path": project / "x.md"})
    assert step_applies(step, "ada@example.com", attributes)
    # An --update import with the same header changes the same attribute.
    people = write_csv(project, "email,PLAN TYPE\nada@example.com,team\n")
    assert run(project, "import", people, "--campaign", SLUG, "--update").exit_code == 0
    assert show(project, "ada@example.com")["attributes"] == {"plan_type": "team"}
    # Two headers that make one name refuse the file, naming both columns.
    people = write_csv(project, "email,Plan Type,plan_type\nbo@example.com,a,b\n")
    refused = run(project, "import", people, "--campaign", SLUG)
    assert refused.exit_code == 1 and "'Plan Type'" in refused.output
    assert "'plan_type'" in refused.output
