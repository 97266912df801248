"""A fuzzed subscriber CSV: every row the import accepts renders and is sent.

The values are hostile on purpose: control characters (ESC, DEL, NUL, C1),
line and paragraph separators, encoded-word markers, emoji, non-ASCII local
parts, oversized cells. The step's subject and body use every field raw, and
the real ``dripline import`` and ``dripline run --once`` carry them to a real
SMTP server. Whatever was accepted must be delivered; whatever would fail at
send time must have been refused at import, with its line.
"""

from __future__ import annotations

import csv
import email
import email.policy
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_servers import RecordingHandler, running_server

from dripline.cli import main

ROOT = Path(__file__).resolve().parent.parent
SLUG = "ketamine-therapy"
T0 = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
STEP = "01-rapid-relief.md"
TRICKY = [
    "\x1b[31m",
    "\x7f",
    "\x00",
    "\x85",
    "\u2028",
    "\r\n",
    "\t",
    "=?utf-8?q?x?=",
    "🦄",
    "Zoë",
    "王小明",
    "Okafor, Chidi",
    "Dr.",
    '"',
    ";",
    " ",
    "x" * 300,
]
text = st.lists(
    st.one_of(
        st.sampled_from(TRICKY),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    ),
    max_size=4,
).map("".join)
domain = st.sampled_from(
    ["@example.com", "@bücher.example", "ë@example.com", "@", "@example.com\r\nBcc: x@y.z", ""]
)
row = st.tuples(domain, text, text, text, st.sampled_from(["", "UTC", "EST", "Mars/Olympus"]))


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    with running_server(handler) as server:
        yield handler, server.port


def make_project(folder: Path) -> None:
    for name in ("campaigns", "templates"):
        shutil.copytree(ROOT / name, folder / name)
    step = folder / "campaigns" / SLUG / STEP
    text = step.read_text(encoding="utf-8")
    text = text.replace(
        'subject = "Reason 1 of 6: Rapid relief from symptoms"',
        "subject = \"For {{ subscriber.first_name | default('') }} "
        "{{ subscriber.name | default('') }} ({{ subscriber.plan | default('') }})\"",
    )
    text = text.replace(
        'Hi {{ subscriber.first_name | default("there") }},',
        'Hi {{ subscriber.first_name | default("there") }}, {{ subscriber.name | default("") }} '
        'on {{ subscriber.plan | default("") }}.',
    )
    step.write_text(text, encoding="utf-8")


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(row, min_size=1, max_size=12))
def test_every_accepted_row_renders_and_is_sent(
    smtp: tuple[RecordingHandler, int], rows: list[tuple[str, str, str, str, str]]
) -> None:
    handler, port = smtp
    handler.received.clear()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        make_project(project)
        people = project / "people.csv"
        with people.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["email", "name", "first_name", "plan", "timezone", "subscribed_at"])
            for n, (at, name, first, plan, zone) in enumerate(rows):
                writer.writerow([f"p{n}{at}", name, first, plan, zone, T0.isoformat()])
        env = {
            "DRIPLINE_ROOT": str(project),
            "DRIPLINE_SECRET_KEY": "test-secret",
            "DRIPLINE_BASE_URL": "https://news.example.com",
        }
        imported = CliRunner(env=env).invoke(
            main, ["import", str(people), "--campaign", SLUG], catch_exceptions=False
        )
        assert "Traceback" not in imported.output
        for line in imported.output.splitlines():
            if line.startswith("Error: "):
                assert line.startswith(f"Error: {people}:"), line  # every problem has its line
        with sqlite3.connect(project / "dripline.db") as conn:
            accepted = {r[0] for r in conn.execute("SELECT email FROM subscribers")}
        now = T0 + timedelta(seconds=30)  # step 1 goes out at enrollment
        sent = CliRunner(env=env).invoke(
            main,
            ["run", "--once", "--now", now.isoformat(), "--sender", f"smtp://127.0.0.1:{port}"],
            catch_exceptions=False,
        )
        assert sent.exit_code == 0, sent.output
        with sqlite3.connect(project / "dripline.db") as conn:
            statuses = conn.execute(
                "SELECT s.email, d.status, d.last_error FROM deliveries d "
                "JOIN enrollments e ON e.id = d.enrollment_id "
                "JOIN subscribers s ON s.id = e.subscriber_id WHERE d.step = 1"
            ).fetchall()
    assert {email_ for email_, *_ in statuses} == accepted
    assert [s for s in statuses if s[1] != "sent"] == []
    received = {r.rcpt_tos[0]: r for r in handler.received}
    assert set(received) == accepted
    for message_bytes in (r.data for r in received.values()):
        message = email.message_from_bytes(message_bytes, policy=email.policy.default)
        assert message["Subject"].startswith("For ")
        assert message.get_body(("plain",)).get_content().lstrip().startswith("Hi ")
