"""Re-timing after skipped steps and late sends: the campaign's spacing from the day a
step actually went out, whatever mix of `when`-skips and outages came before.

Real `dripline run --once --now DAY` processes, one pass a day except during an outage,
send the sample campaign (steps on days 0, 2, 4, 6, 8, 10; every weekday allowed here)
to a pro and a basic subscriber through an aiosmtpd server, on SQLite and PostgreSQL.
The day each step arrived is read from the mailbox, and the due times after the
outage from `dripline timeline --json`.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from smtp_servers import RecordingHandler, running_server

DRIPLINE = [str(Path(sys.executable).with_name("dripline"))]
CAMPAIGN = "campaigns/ketamine-therapy"
START = date(2026, 3, 2)  # enrolled 08:00 UTC: step 1 due that day at 09:00
PRO, BASIC = "pro@example.com", "basic@example.com"


def day(n: int) -> date:
    return START + timedelta(days=n)


# (steps with `when = "subscriber.plan == 'pro'"`, days the workers are down,
#  the day each subscriber's steps arrive, counted from START).
SCENARIOS = {
    # probe-18b: step 3 skipped in the pass after the outage; step 4 goes then, step 5
    # two days later (was: on its old day, 23 hours after step 4).
    "skip after an outage": (
        (3,),
        range(3, 7),
        {PRO: {1: 0, 2: 2, 3: 7, 4: 9, 5: 11, 6: 13}, BASIC: {1: 0, 2: 2, 4: 7, 5: 9, 6: 11}},
    ),
    # Step 2 late; step 3, re-timed from it, skipped on time: step 4 keeps its spacing
    # from step 2 (4 days), not sent the day step 3 was skipped.
    "skip after a late send": (
        (3,),
        range(1, 4),
        {PRO: {1: 0, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12}, BASIC: {1: 0, 2: 4, 4: 8, 5: 10, 6: 12}},
    ),
    # Two skipped steps in a row, both overdue: step 5 goes at once, step 6 two days on.
    "two skips after an outage": (
        (3, 4),
        range(3, 9),
        {PRO: {1: 0, 2: 2, 3: 9, 4: 11, 5: 13, 6: 15}, BASIC: {1: 0, 2: 2, 5: 9, 6: 11}},
    ),
    # No skip at all, one step late without colliding with the next: the next still
    # keeps its two days (was: on its old day, one day after).
    "a late send alone": (
        (),
        range(4, 5),
        {
            PRO: {1: 0, 2: 2, 3: 5, 4: 7, 5: 9, 6: 11},
            BASIC: {1: 0, 2: 2, 3: 5, 4: 7, 5: 9, 6: 11},
        },
    ),
}


def dripline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    ran = subprocess.run([*DRIPLINE, *args], env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran


def steps_of(handler: RecordingHandler) -> list[tuple[str, int]]:
    found = []
    for item in handler.received:
        message = email.message_from_bytes(item.data, policy=email.policy.default)
        number = int(str(message["Subject"]).split("Reason ", 1)[1].split(" ", 1)[0])
        found.append((item.rcpt_tos[0], number))
    return found


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_later_steps_keep_the_spacing_from_the_day_a_step_went_out(project, db_url, scenario):
    conditional, outage, expected = SCENARIOS[scenario]
    toml = project / CAMPAIGN / "campaign.toml"
    toml.write_text(
        toml.read_text().replace(
            'weekdays = ["mon", "tue", "wed", "thu", "fri"]',
            'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]',
        )
    )
    for step in conditional:
        (path,) = (project / CAMPAIGN).glob(f"0{step}-*.md")
        path.write_text(
            path.read_text().replace("+++\n", "+++\nwhen = \"subscriber.plan == 'pro'\"\n", 1)
        )
    env = {
        **os.environ,
        "DRIPLINE_ROOT": str(project),
        "DRIPLINE_DATABASE_URL": db_url,
        "DRIPLINE_SECRET_KEY": "test-secret",
        "DRIPLINE_BASE_URL": "https://news.example.com",
        "DRIPLINE_ALLOW_EXAMPLE_ADDRESSES": "1",
    }
    (project / "people.csv").write_text(
        "email,timezone,subscribed_at,plan\n"
        f"{PRO},UTC,{START}T08:00:00Z,pro\n{BASIC},UTC,{START}T08:00:00Z,basic\n"
    )
    dripline(env, "import", str(project / "people.csv"), "--campaign", "ketamine-therapy")
    arrived: dict[str, dict[int, int]] = {PRO: {}, BASIC: {}}
    after_outage: dict[str, list[dict[str, object]]] = {}
    handler = RecordingHandler()
    with running_server(handler) as server:
        env["DRIPLINE_SENDER"] = f"smtp://127.0.0.1:{server.port}?timeout=20"
        for n in range(max(max(v.values()) for v in expected.values()) + 1):
            if n in outage:
                continue
            seen = len(handler.received)
            dripline(env, "run", "--once", "--now", f"{day(n)}T09:30:00Z")
            for address, step in steps_of(handler)[seen:]:
                assert step not in arrived[address], f"{address} got step {step} twice"
                arrived[address][step] = n
            if n == max(outage) + 1:
                for address in (PRO, BASIC):
                    shown = dripline(
                        env, "timeline", "ketamine-therapy", "--email", address, "--json"
                    )
                    after_outage[address] = json.loads(shown.stdout)
    assert arrived == expected
    # Right after the outage, the timeline already shows the re-timed days (09:00 UTC).
    for address, rows in after_outage.items():
        for row in rows:
            if row["step"] not in expected[address]:  # skipped then, or later on its day
                assert row["status"] in ("skipped", "scheduled"), (address, row)
            elif row["status"] == "scheduled":
                due = f"{day(expected[address][row['step']])}T09:00:00+00:00"
                assert row["due_utc"] == due, (address, row)
