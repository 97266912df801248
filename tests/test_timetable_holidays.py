"""Public holidays skipped like a disallowed weekday: campaign-wide, per subscriber, previewed."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from dripline.campaign import load_campaign
from dripline.cli import main
from dripline.preview import Project, create_app, plan_sends
from dripline.timetable import Timetable

SLUG = "ketamine-therapy"
LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
SCHEDULE = """[schedule]
timezone = "America/Los_Angeles"   # for subscribers who have no time zone of their own
send_time = "09:00"                # local time of day for every step not sent immediately
weekdays = ["mon", "tue", "wed", "thu", "fri"]"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("DRIPLINE_DATABASE_URL", "DRIPLINE_ROOT", "DRIPLINE_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    root = Path(__file__).resolve().parent.parent
    for name in ("campaigns", "templates"):
        shutil.copytree(root / name, tmp_path / name)
    return tmp_path


def set_schedule(project: Path, lines: str) -> Path:
    toml = project / "campaigns" / SLUG / "campaign.toml"
    text = toml.read_text(encoding="utf-8")
    assert SCHEDULE in text
    toml.write_text(text.replace(SCHEDULE, "[schedule]\n" + lines), encoding="utf-8")
    return toml


def local_days(project: Path, email: str, zone: ZoneInfo) -> list[str]:
    with sqlite3.connect(project / "dripline.db") as conn:
        rows = conn.execute(
            "SELECT d.due_at FROM deliveries d JOIN enrollments e ON e.id = d.enrollment_id "
            "JOIN subscribers s ON s.id = e.subscriber_id WHERE s.email = ? ORDER BY d.step",
            (email,),
        ).fetchall()
    return [
        f"{datetime.fromisoformat(r[0]).replace(tzinfo=UTC).astimezone(zone):%a %m-%d}"
        for r in rows
    ]


def test_thanksgiving_2026_moves_to_friday_for_us(project: Path) -> None:
    set_schedule(
        project,
        'timezone = "America/Los_Angeles"\nsend_time = "09:00"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri"]\nholidays = "US"',
    )
    result = CliRunner().invoke(
        main,
        [
            *("--root", str(project), "subscribe", "ann@example.com", "--campaign", SLUG),
            *("--tz", "America/Los_Angeles", "--at", "2026-11-24T08:00"),
        ],
    )
    assert result.exit_code == 0, result.output
    # Day 2 from Tuesday 11-24 is Thanksgiving, Thursday 11-26: Friday instead.
    assert "Fri 2026-11-27 09:00 PST" in result.output
    assert local_days(project, "ann@example.com", LA) == [
        "Tue 11-24",  # step 1 at once
        "Fri 11-27",
        "Mon 11-30",  # day 4 is Saturday
        "Tue 12-01",
        "Wed 12-02",
        "Fri 12-04",
    ]


def test_a_german_subscriber_skips_german_unity_day_and_an_american_does_not(
    project: Path,
) -> None:
    set_schedule(
        project,
        'timezone = "Europe/Berlin"\nsend_time = "09:00"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
        'holidays = "subscriber"',
    )
    people = project / "people.csv"
    people.write_text(
        "email,name,Time Zone,Country\n"
        "lena@example.com,Lena Weber,Europe/Berlin,de\n"
        "sam@example.com,Sam Hill,Europe/Berlin,US\n"
        "nobody@example.com,No Country,Europe/Berlin,\n",
        encoding="utf-8",
    )
    # Enrolled Thursday 2026-10-01: step 2 (day 2) is Saturday 10-03, German Unity Day.
    result = CliRunner().invoke(
        main, ["--root", str(project), "import", str(people), "--campaign", SLUG]
    )
    assert result.exit_code == 0, result.output
    with sqlite3.connect(project / "dripline.db") as conn:
        attributes = dict(conn.execute("SELECT email, attributes FROM subscribers").fetchall())
    assert json.loads(attributes["lena@example.com"]) == {"country": "DE"}
    table = Timetable.of(load_campaign(project / "campaigns" / SLUG))
    enrolled = datetime(2026, 10, 1, 8, 0, tzinfo=BERLIN)

    def days(country: str | None) -> list[str]:
        dues = table.due_times(enrolled, "Europe/Berlin", country)
        return [f"{d.astimezone(BERLIN):%a %m-%d}" for d in dues]

    assert days("DE")[1] == "Sun 10-04"
    assert days("US")[1] == "Sat 10-03"
    assert days(None)[1] == "Sat 10-03"  # no country and no holidays_default: no holidays


def test_imported_country_reaches_the_stored_due_dates(project: Path) -> None:
    set_schedule(
        project,
        'timezone = "Europe/Berlin"\nsend_time = "09:00"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
        'holidays = "subscriber"\nholidays_default = "US"',
    )
    people = project / "people.csv"
    people.write_text(
        "email,timezone,country,subscribed_at\n"
        "lena@example.com,Europe/Berlin,DE,2026-10-01T08:00\n"
        "sam@example.com,Europe/Berlin,,2026-10-01T08:00\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["--root", str(project), "import", str(people), "--campaign", SLUG]
    )
    assert result.exit_code == 0, result.output
    assert local_days(project, "lena@example.com", BERLIN)[:2] == ["Thu 10-01", "Sun 10-04"]
    # No country: holidays_default (US), where 10-03 is a normal Saturday.
    assert local_days(project, "sam@example.com", BERLIN)[:2] == ["Thu 10-01", "Sat 10-03"]


def test_a_subdivision_adds_its_own_holidays(project: Path) -> None:
    set_schedule(
        project,
        'timezone = "America/Los_Angeles"\nsend_time = "09:00"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri"]\nholidays = "US-CA"',
    )
    table = Timetable.of(load_campaign(project / "campaigns" / SLUG))
    # Day after Thanksgiving is a California state holiday, not a federal one.
    enrolled = datetime(2026, 11, 24, 8, 0, tzinfo=LA)
    assert f"{table.due_times(enrolled, None)[1].astimezone(LA):%a %m-%d}" == "Mon 11-30"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('holidays = "XX"', "schedule.holidays: unknown country code 'XX'"),
        ('holidays = "US-ZZ"', "schedule.holidays: unknown subdivision 'US-ZZ'"),
        ('holidays = "subscriber"\nholidays_default = "Germany"', "holidays_default"),
        # A misspelt key used to skip no holidays at all, without a word.
        ('holiday = "US"', "unknown key 'holiday' in [schedule]; did you mean 'holidays'?"),
        ('holidays_default = "US"', 'holidays_default only applies with holidays = "subscriber"'),
        (
            'holidays = "US"\nholidays_default = "DE"',
            'holidays_default only applies with holidays = "subscriber"',
        ),
    ],
)
def test_bad_holiday_settings_name_file_and_line(project: Path, line: str, message: str) -> None:
    toml = set_schedule(project, f'timezone = "America/Los_Angeles"\nsend_time = "09:00"\n{line}')
    result = CliRunner().invoke(main, ["--root", str(project), "check"])
    assert result.exit_code == 1
    key_line = next(
        n
        for n, text in enumerate(toml.read_text().splitlines(), 1)
        if text.startswith(line.splitlines()[-1])
    )
    assert f"{toml}:{key_line}: " in result.output and message in result.output
    assert "Traceback" not in result.output


def test_a_bad_country_in_a_csv_row_is_that_rows_problem(project: Path) -> None:
    people = project / "people.csv"
    people.write_text(
        "email,country\nok@example.com,DE\nbad@example.com,Germany\nalso@example.com,\n"
        "three@example.com,usa\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["--root", str(project), "import", str(people), "--campaign", SLUG]
    )
    assert result.exit_code == 1
    assert f"Error: {people}:3: unknown country code 'Germany'" in result.output
    # A three-letter code is the commonest mistake: the message gives the right one.
    assert (
        f"Error: {people}:5: unknown country code 'usa' (use its ISO 3166-1 alpha-2 code, US)"
    ) in result.output
    assert "2 enrolled" in result.output


def test_preview_shows_a_holiday_like_a_weekend_with_its_name(project: Path) -> None:
    set_schedule(
        project,
        'timezone = "America/Los_Angeles"\nsend_time = "09:00"\n'
        'weekdays = ["mon", "tue", "wed", "thu", "fri"]\n'
        'holidays = "subscriber"\nholidays_default = "US"',
    )
    enrolled = datetime(2026, 11, 24, 8, 0, tzinfo=LA)
    planned = plan_sends(load_campaign(project / "campaigns" / SLUG), enrolled)
    assert planned[1].moved_from == "Thanksgiving Day"
    assert "public holidays (Thanksgiving Day" in planned[1].moved_because
    preview = Project(project, base_url="http://127.0.0.1:8765", clock=lambda: enrolled)
    client = TestClient(
        create_app(preview, port=8765, watch=False), base_url="http://127.0.0.1:8765"
    )
    response = client.get(f"/campaigns/{SLUG}")
    assert response.status_code == 200
    doc = lxml.html.fromstring(response.text)
    notes = [" ".join(n.text_content().split()) for n in doc.cssselect(".inbox-note")]
    assert notes[0].startswith("Moved 1 day from Thanksgiving Day")
    hatched = [r.findtext("title") for r in doc.cssselect("svg.timeline rect.tl-skip")]
    assert "Thu 26 Nov: Thanksgiving Day, no sends" in hatched
    assert "Sat 28 Nov: no sends" in hatched
    assert "Thanksgiving Day (Thu 26 Nov)" in doc.cssselect("svg.timeline desc")[0].text


def test_preview_names_every_holiday_a_step_was_pushed_past(project: Path) -> None:
    # Fridays only, from Sunday 2026-11-29: step 5 (day 8, a Monday) must follow step 4
    # on Fri 12-18, and then Christmas Day and New Year's Day are Fridays too.
    set_schedule(
        project,
        'timezone = "America/Los_Angeles"\nsend_time = "09:00"\n'
        'weekdays = ["fri"]\nholidays = "US"',
    )
    enrolled = datetime(2026, 11, 29, 7, 45, tzinfo=LA)
    planned = plan_sends(load_campaign(project / "campaigns" / SLUG), enrolled)
    assert [f"{p.due:%a %m-%d}" for p in planned[3:5]] == ["Fri 12-18", "Fri 01-08"]
    preview = Project(project, base_url="http://127.0.0.1:8765", clock=lambda: enrolled)
    client = TestClient(
        create_app(preview, port=8765, watch=False), base_url="http://127.0.0.1:8765"
    )
    doc = lxml.html.fromstring(client.get(f"/campaigns/{SLUG}").text)
    notes = [" ".join(n.text_content().split()) for n in doc.cssselect(".inbox-note")]
    assert notes[3] == (
        "Moved 32 days from Monday: no emails go out on Mondays; each email goes out on a "
        "later day than the one before; then public holidays: Christmas Day (Fri 25 Dec), "
        "New Year's Day (Fri 01 Jan)"
    )
