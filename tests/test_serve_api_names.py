"""`PATCH /api/subscribers/EMAIL` on a real `dripline serve` (SQLite and PostgreSQL):
the address is the whole rest of the path, every answer is JSON, keys follow the one
attribute-name rule, RFC 7396 merge patches are taken, and the 32 KiB limit holds while
the body is read (probe-18b LOW 2, LOW 3, LOW 7; probe-18 LOW 1)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from results_support import API_TOKEN, SLUG, cli, env_for, free_port, serving

GOOD = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def served(project: Path, db_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = env_for(project, f"http://127.0.0.1:{port}", db_url)
    people = project / "people.csv"
    people.write_text("email,name,plan\na/b@example.com,Slash,basic\nada@example.com,Ada,basic\n")
    cli(env, "import", str(people), "--campaign", SLUG)
    with serving(env, port) as base:
        yield base, env


def shown(env: dict[str, str], address: str) -> dict:
    return json.loads(cli(env, "subscriber", "show", address, "--json"))


def test_an_address_with_a_slash_is_found_and_unknown_paths_answer_json(served):
    base, env = served
    answer = httpx.patch(
        f"{base}/api/subscribers/a%2Fb@example.com", json={"plan": "pro"}, headers=GOOD
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["email"] == "a/b@example.com"
    assert shown(env, "a/b@example.com")["attributes"] == {"plan": "pro"}
    for path in ("nobody/else@example.com", "x/y/z@example.com"):
        missing = httpx.patch(f"{base}/api/subscribers/{path}", json={"plan": "pro"}, headers=GOOD)
        assert missing.status_code == 404, missing.text
        assert missing.headers["content-type"].startswith("application/json")
        assert missing.json()["error"] == "no subscriber has that email address"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"plan": "a", "Plan": "b", "PLAN": None}, ("'plan'", "'Plan'")),
        ({"Plan Type": "a", "plan-type": "b"}, ("'Plan Type'", "'plan-type'")),
        ({"name": "Ada L", "Full Name": "Ada K"}, ("'name'", "'Full Name'")),
    ],
)
def test_two_keys_for_one_field_are_400_naming_both(served, body, named):
    base, env = served
    answer = httpx.patch(f"{base}/api/subscribers/ada@example.com", json=body, headers=GOOD)
    assert answer.status_code == 400, answer.text
    assert all(name in answer.json()["error"] for name in named)
    after = shown(env, "ada@example.com")
    assert (after["name"], after["attributes"]) == ("Ada", {"plan": "basic"})


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"plan": "a", "plan": "b"}', "the key 'plan' appears twice"),
        ('{"plan": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    ],
)
def test_a_key_given_twice_or_a_body_not_in_utf8_is_400_saying_so(served, raw, words):
    """probe-18c LOW e: the last of two equal keys won silently; a Latin-1 body was "not a
    JSON object". Nothing is stored either way."""
    base, env = served
    headers = {**GOOD, "Content-Type": "application/json"}
    answer = httpx.patch(f"{base}/api/subscribers/ada@example.com", content=raw, headers=headers)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]
    assert shown(env, "ada@example.com")["attributes"] == {"plan": "basic"}


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("k" * 65, "at most 64"),
        ("items", "subscriber mapping's own 'items'"),
        ("values", "subscriber mapping's own"),
        ("__class__", "subscriber mapping's own"),
        ("2fa", "starts with a digit"),
        ("(*)", "no letters or digits"),
    ],
)
def test_a_name_subscriber_dot_name_cannot_read_is_refused_naming_it(served, key, words):
    base, env = served
    answer = httpx.patch(f"{base}/api/subscribers/ada@example.com", json={key: "x"}, headers=GOOD)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == key and words in answer.json()["error"]
    assert shown(env, "ada@example.com")["attributes"] == {"plan": "basic"}


def test_null_removes_last_name_and_a_merge_patch_is_taken(served):
    base, env = served
    url = f"{base}/api/subscribers/ada@example.com"
    merge = {**GOOD, "Content-Type": "application/merge-patch+json"}
    set_it = httpx.patch(url, content=b'{"last_name": "Lovelace", "Seats (max)": 7}', headers=merge)
    assert set_it.status_code == 200, set_it.text
    assert shown(env, "ada@example.com")["attributes"] == {
        "plan": "basic",
        "last_name": "Lovelace",
        "seats_max": "7",
    }
    removed = httpx.patch(url, content=b'{"last_name": null}', headers=merge)
    assert removed.status_code == 200, removed.text
    assert "last_name" not in shown(env, "ada@example.com")["attributes"]
    other = httpx.patch(url, content=b"{}", headers={**GOOD, "Content-Type": "text/json"})
    assert other.status_code == 415 and "merge-patch+json" in other.json()["error"]


def test_a_body_over_32_kib_is_refused_without_reading_the_rest(served):
    # A chunked body that never ends: before, the server read until the client stopped
    # (any size) and only then answered 413; now it answers once 32 KiB have come.
    base, _ = served
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(
            b"PATCH /api/subscribers/ada@example.com HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {API_TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b'{"a": "' + b"x" * 40_000
        conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")  # and no end
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = conn.recv(65536)  # times out (the test fails) if no answer comes
            assert data, "the server closed the connection without an answer"
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # A declared Content-Length over the limit is refused before any of the body.
    declared = httpx.patch(
        f"{base}/api/subscribers/ada@example.com",
        content=b"{" + b" " * 40_000 + b"}",
        headers={**GOOD, "Content-Type": "application/json"},
    )
    assert declared.status_code == 413 and "32 KiB" in declared.json()["error"]
