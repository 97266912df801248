"""``dripline bounces process --imap``: Debian's Dovecot over TLS on 127.0.0.1.

Needs ``eval "$(bash .ci/dovecot.sh start)"`` (IMAP_HOST, IMAP_PORT, IMAP_USER,
IMAP_PASSWORD, IMAP_CAFILE). Each test works in a folder of its own.
"""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from bounce_support import (
    environment,
    invoke,
    report,
    state_of,
    subscribe_and_send_first_step,
)

HOST, PORT, USER, PASSWORD, CAFILE = (
    os.environ.get(name)
    for name in ("IMAP_HOST", "IMAP_PORT", "IMAP_USER", "IMAP_PASSWORD", "IMAP_CAFILE")
)
pytestmark = pytest.mark.skipif(
    not (HOST and PORT and USER and PASSWORD and CAFILE),
    reason="no IMAP server: run .ci/dovecot.sh start",
)


@pytest.fixture
def imap() -> Iterator[imaplib.IMAP4_SSL]:
    context = ssl.create_default_context(cafile=CAFILE)
    client = imaplib.IMAP4_SSL(HOST, int(PORT or 0), ssl_context=context)
    client.login(USER, PASSWORD)
    yield client
    client.logout()


def folder_contents(imap: imaplib.IMAP4_SSL, folder: str) -> list[tuple[bytes, bytes]]:
    """(flags, message) of each message in ``folder``, read without setting \\Seen."""
    kind, _ = imap.select(f'"{folder}"', readonly=True)
    if kind != "OK":
        return []
    _, data = imap.uid("SEARCH", "ALL")
    found = []
    for uid in (data[0] or b"").split():
        _, fetched = imap.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
        meta, body = fetched[0]
        found.append((meta.split(b"FLAGS (")[1].split(b")")[0], body))
    return found


@pytest.fixture
def env(project: Path) -> dict[str, str]:
    shutil.copytree(project / "campaigns/ketamine-therapy", project / "campaigns/second")
    return environment(project, DRIPLINE_IMAP_PASSWORD=PASSWORD or "")


def url(folder: str, cafile: str | None = CAFILE) -> str:
    query = f"?cafile={cafile}" if cafile else ""
    return f"imaps://{USER}@{HOST}:{PORT}/{folder}{query}"


def test_the_same_flow_over_imap_moves_processed_mail_to_a_folder(env, project, imap):
    sent = subscribe_and_send_first_step(env, ["ada@example.org", "bob@example.org"])
    ada, bob = sent["ada@example.org"], sent["bob@example.org"]
    folder = f"bounces-{uuid.uuid4().hex[:8]}"
    done = f"{folder}-done"
    assert imap.create(f'"{folder}"')[0] == "OK"
    messages = {
        name: report(f"{name}.eml", verp=verp, rcpt=who.email, message_id=who.message_id)
        for name, verp, who in (
            ("postfix-user-unknown", ada.verp, ada),
            ("arf-complaint", bob.verp, bob),
            ("vacation", ada.verp, ada),
            ("human-reply", ada.verp, ada),
        )
    }
    for data in messages.values():
        assert imap.append(f'"{folder}"', None, None, data)[0] == "OK"

    result = invoke(env, "bounces", "process", "--imap", url(folder), "--move-to", done)
    assert result.exit_code == 0, result.output
    assert "2 processed" in result.output and "2 not bounces" in result.output
    assert state_of(project, ada.email)[0] == "bounced"
    assert state_of(project, bob.email)[0] == "unsubscribed"

    left = folder_contents(imap, folder)
    assert sorted(body for _, body in left) == sorted(
        [messages["vacation"], messages["human-reply"]]
    )
    assert all(b"\\Seen" not in flags for flags, _ in left)  # not even marked read
    moved = sorted(body for _, body in folder_contents(imap, done))
    assert moved == sorted([messages["postfix-user-unknown"], messages["arf-complaint"]])
    events = json.loads(invoke(env, "bounces", "list", "--json").output)
    assert {(e["email"], e["kind"]) for e in events} == {
        (ada.email, "hard"),
        (bob.email, "complaint"),
    }

    again = invoke(env, "bounces", "process", "--imap", url(folder), "--move-to", done)
    assert "0 processed" in again.output and len(folder_contents(imap, folder)) == 2


def test_imap_refusals_are_one_clear_error(env, imap):
    folder = f"bounces-{uuid.uuid4().hex[:8]}"
    imap.create(f'"{folder}"')
    wrong = invoke(
        {**env, "DRIPLINE_IMAP_PASSWORD": "wrong"}, "bounces", "process", "--imap", url(folder)
    )
    assert wrong.exit_code == 1 and wrong.output.startswith("Error: imaps://")
    assert "wrong" not in wrong.output and "Traceback" not in wrong.output
    assert "b'" not in wrong.output and "AUTHENTICATIONFAILED" in wrong.output  # no bytes repr
    none = invoke(
        {**env, "DRIPLINE_IMAP_PASSWORD": ""}, "bounces", "process", "--imap", url(folder)
    )
    assert none.exit_code == 1 and "DRIPLINE_IMAP_PASSWORD is not set" in none.output
    # Without the test CA the self-signed chain is refused: certificates are always checked.
    untrusted = invoke(env, "bounces", "process", "--imap", url(folder, cafile=None))
    assert untrusted.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.output
    plain = invoke(env, "bounces", "process", "--imap", f"imap://{USER}@{HOST}/{folder}")
    assert plain.exit_code == 1 and "IMAP over TLS only" in plain.output
    in_url = invoke(env, "bounces", "process", "--imap", f"imaps://{USER}:pw@{HOST}/{folder}")
    assert in_url.exit_code == 1 and "DRIPLINE_IMAP_PASSWORD, not in the URL" in in_url.output
    missing = invoke(env, "bounces", "process", "--imap", url("no-such-folder-here"))
    assert missing.exit_code == 1 and "no-such-folder-here" in missing.output
