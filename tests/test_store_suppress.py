"""The suppression list: the CLI, and import, sign-up, subscribe and the claim all refusing it."""

from __future__ import annotations

import csv
import io
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from bounce_support import T0, cli, db_rows, environment, invoke
from serve_support import make_served, sign_up

from dripline.store import add_suppression, list_suppressions, open_store


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    return environment(project)


def test_add_list_remove_export_import(env, tmp_path):
    assert "Suppressed Ada@Example.org" in cli(
        env, "suppress", "add", "Ada@Example.org", "--reason", "asked by phone"
    )
    assert "already" in cli(env, "suppress", "add", "ada@example.org", "--reason", "again")
    listed = cli(env, "suppress", "list")
    assert "Ada@example.org" in listed and "asked by phone" in listed and "\tcli\t" in listed
    exported = cli(env, "suppress", "export")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["email"], r["reason"], r["source"]) for r in rows] == [
        ("Ada@example.org", "asked by phone", "cli")
    ]
    assert rows[0]["created_at"].endswith("+00:00")

    assert "Removed" in cli(env, "suppress", "remove", "ADA@example.org")
    gone = invoke(env, "suppress", "remove", "ada@example.org")
    assert gone.exit_code == 1 and "Error: ada@example.org is not suppressed" in gone.output

    file = tmp_path / "list.csv"
    file.write_text(
        "email,reason\nbo@example.org,spam trap\nnot-an-address,x\ncy@example.org,\n\n"
        + exported.splitlines()[1]
        + "\n"
    )
    result = invoke(env, "suppress", "import", str(file))
    assert result.exit_code == 1
    assert f"Error: {file}:3: not an email address" in result.output
    assert "3 suppressed, 0 already on the list, 1 invalid row(s) skipped" in result.output
    as_json = cli(env, "suppress", "list", "--json")
    assert '"reason": "imported"' in as_json and '"reason": "spam trap"' in as_json
    again = invoke(env, "suppress", "import", str(file))
    assert "0 suppressed, 3 already on the list" in again.output
    header = tmp_path / "bad.csv"
    header.write_text("address\nx@example.org\n")
    bad = invoke(env, "suppress", "import", str(header))
    assert bad.exit_code == 1 and "no 'email' column" in bad.output


def test_csv_import_refuses_a_suppressed_address_with_the_reason(env, project, tmp_path):
    cli(env, "suppress", "add", "bo@example.org", "--reason", "complained by phone")
    file = tmp_path / "people.csv"
    file.write_text("email,name\nada@example.org,Ada\nBo@Example.org,Bo\ncy@example.org,Cy\n")
    result = invoke(env, "import", str(file), "--campaign", "ketamine-therapy")
    assert result.exit_code == 1
    assert f"Error: {file}:3: Bo@example.org not imported: suppressed since" in result.output
    assert "complained by phone" in result.output
    assert "2 enrolled" in result.output and "1 suppressed address(es) refused" in result.output
    assert {r["email"] for r in db_rows(project)} == {"ada@example.org", "cy@example.org"}


def test_subscribe_refuses_and_the_claim_cancels_a_suppressed_address(env, project):
    cli(
        env,
        "subscribe",
        "ada@example.org",
        "--campaign",
        "ketamine-therapy",
        "--at",
        T0.isoformat(),
    )
    cli(env, "suppress", "add", "ada@example.org", "--reason", "hard bounce elsewhere")
    refused = invoke(env, "subscribe", "ada@example.org", "--campaign", "ketamine-therapy")
    assert refused.exit_code == 1 and "hard bounce elsewhere" in refused.output
    out = cli(
        env, "run", "--once", "--now", (T0 + timedelta(days=30)).isoformat(), "--sender", "memory:"
    )
    assert "sent 0" in out
    assert {r["status"] for r in db_rows(project)} == {"cancelled"}


def test_a_suppressed_address_signing_up_gets_no_email_and_the_reason_is_logged(
    tmp_path, sqlite_url, caplog
):
    served = make_served(tmp_path, sqlite_url, "suppressed")
    try:
        engine = open_store(sqlite_url)
        add_suppression(engine, "ada@example.com", "complaint via ses", source="bounce", now=T0)
        client = served.client()
        with caplog.at_level(logging.INFO, logger="dripline.serve"):
            response = sign_up(client, email="Ada@Example.com")
        assert response.status_code == 200 and "Check your inbox" in response.text
        assert served.emails() == []  # refused: no confirmation email
        assert "suppressed: suppressed since" in caplog.text and "complaint via ses" in caplog.text
        assert "ada@example.com" not in response.text.lower()
        ok = sign_up(client, email="bo@example.com")
        assert ok.status_code == 200 and len(served.emails()) == 1
        assert [e.email for e in list_suppressions(engine)] == ["ada@example.com"]
        engine.dispose()
    finally:
        served.close()


def test_import_of_an_excel_semicolon_csv_with_a_bom_and_idna_domains(env, tmp_path):
    """Excel where the decimal mark is a comma saves ``;``-separated UTF-8 with a BOM and
    CRLF; the subscriber import reads that, so the suppression import must too. Addresses
    are suppressed by their key: case and the Unicode or punycode domain do not matter."""
    file = tmp_path / "export.csv"
    file.write_bytes(
        "\ufeffE-Mail;Reason\r\n"
        "Ana@Example.com;asked by phone\r\n"
        "bo@BÜCHER.example;complained\r\n"
        '"cy@example.org";"reason; with a semicolon"\r\n'
        "not-an-address;x\r\n".encode("utf-8")
    )
    result = invoke(env, "suppress", "import", str(file))
    assert f"Error: {file}:5: not an email address" in result.output, result.output
    assert "3 suppressed, 0 already on the list, 1 invalid row(s) skipped" in result.output
    engine = open_store(env_url(env))
    entries = {e.email.lower(): e.reason for e in list_suppressions(engine)}
    engine.dispose()
    assert entries == {
        "ana@example.com": "asked by phone",
        "bo@xn--bcher-kva.example": "complained",
        "cy@example.org": "reason; with a semicolon",
    }
    for spelling in (
        "ana@example.com",
        "ANA@EXAMPLE.COM",
        "Bo@bücher.example",
        "bo@XN--BCHER-KVA.example",
    ):
        refused = invoke(env, "subscribe", spelling, "--campaign", "ketamine-therapy")
        assert refused.exit_code == 1 and "suppressed since" in refused.output, spelling
    unicode_text = tmp_path / "unicode.txt"  # Excel's "Unicode Text": UTF-16, tab-separated
    unicode_text.write_bytes("email\treason\r\ndi@example.org\tbounced\r\n".encode("utf-16"))
    assert "1 suppressed" in cli(env, "suppress", "import", str(unicode_text))


def env_url(env: dict[str, str]) -> str:
    return f"sqlite:///{Path(env['DRIPLINE_ROOT']) / 'dripline.db'}"
