"""Campaign folders: ``campaign.toml`` plus one Markdown email per step, loaded and validated.

A campaign lives in ``campaigns/<slug>/``. Every problem is reported as a
:class:`~dripline.errors.CampaignError` naming the file and, where it can be
known, the line.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._durations import parse_duration
from ._holidays import parse_region
from ._keys import key_line, suggestion, unknown_keys
from .conditions import check_when
from .errors import CampaignError, DriplineError

__all__ = [
    "DAY_MAX",
    "EVENT_NAME",
    "STEP_KEYS",
    "SUBJECT_VARIANTS",
    "WEEKDAYS",
    "Campaign",
    "LintSettings",
    "Schedule",
    "Step",
    "Tracking",
    "campaign_slugs",
    "line_of_key",
    "load_campaign",
    "parse_toml",
    "read_utf8",
    "step_identities",
]

DAY_MAX = 36_500  # the latest a step may be, in days after enrollment

# Every key campaign.toml may hold, table by table ("" is the top level): the one place a
# feature that reads a new key declares it. Any other key is a typo, and an error naming
# its line and the closest known key.
CAMPAIGN_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "name",
            "layout",
            "lang",
            "reply_to",
            "from",
            "links",
            "footer",
            "schedule",
            "lint",
            "tracking",
            "goal",
            "experiment",
        }
    ),
    "from": frozenset({"name", "address"}),
    "links": frozenset({"utm_source", "utm_medium", "utm_campaign"}),
    "footer": frozenset({"postal_address", "disclaimer"}),
    # holidays / holidays_default (read by _holiday_setting): public holidays skipped.
    "schedule": frozenset({"timezone", "send_time", "weekdays", "holidays", "holidays_default"}),
    # Read by _parse_lint: the spam-score threshold and the target email clients.
    "lint": frozenset({"spam_threshold", "clients"}),
    # Read by _parse_results: opt-in click and open tracking, and the goal event.
    "tracking": frozenset({"clicks", "opens"}),
    "goal": frozenset({"event"}),
    # Read by _parse_experiment: when an A/B subject test picks its winner (dripline.experiments).
    # click_window: how long a message's clicks are awaited before the test may count it.
    "experiment": frozenset({"winner_after", "click_window"}),
}
# Every key a step's front matter may hold (id: a stable step identity that survives
# renumbering; backfill: also send the step to those already past it; when: a condition on
# the subscriber, see dripline.conditions).
# subjects: 2 to 4 A/B subject variants instead of subject (see dripline.experiments).
STEP_KEYS = frozenset({"subject", "subjects", "preheader", "day", "send", "id", "backfill", "when"})
WINNER_AFTER_MAX = 10_000_000  # [experiment] winner_after: sends per variant
# [experiment] click_window: a test counts only messages sent at least this long ago.
DEFAULT_CLICK_WINDOW = timedelta(hours=24)
CLICK_WINDOW_MAX = timedelta(days=365)
SUBJECT_VARIANTS = (2, 4)  # the fewest and most ``subjects`` a step may have
# Step files larger than this are refused before they are read: an email is kilobytes,
# and a mistaken symlink or a pasted export must not take minutes and gigabytes.
MAX_STEP_BYTES = 1024 * 1024

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_STEP_FILE = re.compile(r"^(\d{2})-([a-z0-9][a-z0-9-]*)\.md$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FRONT_MATTER_FENCE = "+++"


@dataclass(frozen=True)
class Schedule:
    """When steps go out: a local time of day on allowed weekdays, in a default time zone."""

    timezone: str = "UTC"
    send_time: time = time(9, 0)
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday is 0, as in datetime.weekday()
    # Public holidays skipped like a disallowed weekday: a region ("US", "US-CA"),
    # "subscriber" (each subscriber's ``country`` attribute), or None for no holidays.
    holidays: str | None = None
    holidays_default: str | None = None  # the region for "subscriber" without a country

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Step:
    """One email of a sequence."""

    number: int  # 1-based position in the sequence
    slug: str  # the file name without its number and ".md"
    path: Path
    subject: str
    preheader: str
    day: int  # offset in days from subscription
    send_immediately: bool
    body: str  # Markdown (may hold Jinja expressions)
    body_line: int  # the file line the body starts on, to map template errors back
    # The step's identity: front-matter ``id`` if given, else ``slug``. Deliveries refer to
    # it, so renumbering or reordering files never changes what a subscriber gets.
    id: str = ""
    backfill: bool = False  # `dripline apply` also sends a new step to those already past it
    # A Jinja expression on ``subscriber`` (dripline.conditions); false at send time: the
    # delivery is ``skipped``. Empty: the step goes to everyone.
    when: str = ""
    # A/B subject variants (2 to 4); ``subject`` is then the first of them. Empty: one subject.
    subjects: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.slug)

    @property
    def name(self) -> str:
        """``NN-slug``: how files and previews name this step."""
        return f"{self.number:02d}-{self.slug}"


@dataclass(frozen=True)
class LintSettings:
    """``[lint]`` in campaign.toml: what ``dripline check`` holds this campaign to."""

    spam_threshold: float = 5.0  # SpamAssassin points; above it an error, above half a warning
    clients: tuple[str, ...] = ()  # caniemail client ids or families; empty: the default set


@dataclass(frozen=True)
class Tracking:
    """``[tracking]`` in campaign.toml: what is counted about each message (both opt-in)."""

    clicks: bool = False  # body links go through BASE/c/TOKEN, looked up on the server
    opens: bool = False  # a 1x1 image at BASE/o/TOKEN (unreliable: proxies load every image)


# What an event (and a goal) may be called: one word a form or a shop system can send.
EVENT_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"


@dataclass(frozen=True)
class Campaign:
    """A campaign folder, validated."""

    slug: str
    path: Path
    name: str
    from_name: str
    from_address: str
    reply_to: str | None
    layout: str
    lang: str
    utm: dict[str, str]
    postal_address: str
    disclaimer: str
    schedule: Schedule
    steps: tuple[Step, ...] = field(default=())
    lint: LintSettings = field(default_factory=LintSettings)
    # [tracking]: both off unless the campaign opts in (health campaigns may not want them).
    tracking: Tracking = field(default_factory=Tracking)
    goal_event: str | None = None  # [goal] event: recorded for a subscriber, it ends their sequence
    # [experiment] winner_after: sends per variant before an A/B step may pick a winner.
    winner_after: int | None = None
    # [experiment] click_window: the one look at a test counts only messages sent this
    # long before it (and people's clicks on them), so their clicks had time to come in.
    click_window: timedelta = DEFAULT_CLICK_WINDOW

    @property
    def toml_path(self) -> Path:
        return self.path / "campaign.toml"

    def step(self, number: int) -> Step:
        for step in self.steps:
            if step.number == number:
                return step
        raise CampaignError(f"campaign {self.slug!r} has no step {number}", path=self.path)

    def step_by_id(self, identity: str) -> Step | None:
        """The step whose identity is ``identity``, or None when no file has it (any more)."""
        for step in self.steps:
            if step.id == identity:
                return step
        return None

    @property
    def step_ids(self) -> tuple[str, ...]:
        """Step identities in sequence order."""
        return tuple(step.id for step in self.steps)


def campaign_slugs(campaigns_dir: Path) -> list[str]:
    """Slugs of the folders under ``campaigns/`` that hold a ``campaign.toml``, sorted."""
    if not campaigns_dir.is_dir():
        return []
    return sorted(p.parent.name for p in campaigns_dir.glob("*/campaign.toml"))


def read_utf8(path: Path, limit: int = MAX_STEP_BYTES) -> str:
    """A campaign file's text; not UTF-8 is an error naming the line of the first bad byte.

    Anything but a regular file (a symlink to ``/dev/zero``, a FIFO, a folder) and files
    over ``limit`` bytes are refused before reading, so they cannot hang or exhaust memory.
    """
    try:
        info = path.stat()  # follows symlinks: what would be read
        if not stat.S_ISREG(info.st_mode):
            raise CampaignError("not a regular file (a device, folder or pipe?)", path=path)
        if info.st_size > limit:
            raise CampaignError(
                f"the file is {info.st_size / 1024 / 1024:.1f} MB; campaign files are limited "
                f"to {limit / 1024 / 1024:g} MB",
                path=path,
            )
        with path.open("rb") as handle:
            data = handle.read(limit + 1)  # the size may change after stat()
    except OSError as err:
        raise CampaignError(f"cannot read: {err.strerror}", path=path) from err
    if len(data) > limit:
        raise CampaignError(f"the file is over {limit / 1024 / 1024:g} MB", path=path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise CampaignError(
            f"not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8",
            path=path,
            line=line,
        ) from err
    return text.removeprefix("\ufeff")


def _line_of(text: str, key: str, first_line: int = 1) -> int | None:
    """The line where ``key =`` is set in TOML ``text`` (which starts at ``first_line``)."""
    # Blanks, not \s: a line break before the key is not part of the key's line.
    match = re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=", text, re.MULTILINE)
    if match is None:
        return None
    return text.count("\n", 0, match.start()) + first_line


def line_of_key(path: Path, key: str) -> int | None:
    """The line of ``path`` where ``key =`` is set, for pointing an error at it."""
    try:
        return _line_of(path.read_text(encoding="utf-8"), key)
    except (OSError, UnicodeDecodeError):
        return None


def parse_toml(text: str, path: Path, first_line: int = 1) -> dict[str, Any]:
    """TOML, with errors naming ``path`` and the line (``text`` starts at ``first_line``)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = re.search(r"\(at line (\d+), column \d+\)", str(err))
        line = int(found.group(1)) + first_line - 1 if found else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(err))
        raise CampaignError(f"invalid TOML: {message}", path=path, line=line) from err


class _Fields:
    """Typed access to a TOML table that reports the file and line of a bad value."""

    def __init__(self, data: dict[str, Any], text: str, path: Path, prefix: str = "", first=1):
        self.data, self.text, self.path, self.prefix, self.first = data, text, path, prefix, first

    def fail(self, key: str, message: str) -> CampaignError:
        return CampaignError(message, path=self.path, line=_line_of(self.text, key, self.first))

    def string(self, key: str, *, required: bool = True, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                raise CampaignError(
                    f"missing {self.prefix}{key} (a string)",
                    path=self.path,
                    line=self.first if self.first > 1 else None,
                )
            return default
        if not isinstance(value, str):
            raise self.fail(key, f"{self.prefix}{key} must be a string")
        if required and not value.strip():
            raise self.fail(key, f"{self.prefix}{key} must not be empty")
        return value

    def table(self, key: str) -> _Fields:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"{key} must be a table ([{key}])")
        return _Fields(value, self.text, self.path, f"{key}.", self.first)

    def reject_unknown(self, known: frozenset[str], what: str) -> None:
        """An unknown key (a typo) is an error naming its line and the closest known key."""
        for key in unknown_keys(self.data, known):
            table = self.prefix.rstrip(".") or None
            raise CampaignError(
                f"unknown key {key!r} in {what}; {suggestion(key, known)}",
                path=self.path,
                line=key_line(self.text, key, table, self.first),
            )


def _check_address(fields: _Fields, key: str, value: str) -> str:
    shape = r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+"
    if any(c in value for c in "\r\n\0") or not re.fullmatch(shape, value):
        raise fields.fail(key, f"{fields.prefix}{key} is not an email address: {value!r}")
    return value


_SCHEDULE_KEYS = ("timezone", "send_time", "weekdays", "holidays", "holidays_default")


def _parse_schedule(fields: _Fields) -> Schedule:
    # A misspelt key ("holiday") would silently skip no holidays at all.
    for key in fields.data:
        if key not in _SCHEDULE_KEYS:
            close = difflib.get_close_matches(key, _SCHEDULE_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise fields.fail(
                key,
                f"unknown key schedule.{key} ({hint}keys: {', '.join(_SCHEDULE_KEYS)})",
            )
    tz_name = fields.string("timezone", required=False, default="UTC")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise fields.fail(
            "timezone", f"unknown time zone {tz_name!r} (use an IANA name like America/New_York)"
        ) from err
    raw_time = fields.string("send_time", required=False, default="09:00")
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", raw_time.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise fields.fail("send_time", f"send_time must be HH:MM (24-hour), not {raw_time!r}")
    raw_days = fields.data.get("weekdays", list(WEEKDAYS[:5]))
    if not isinstance(raw_days, list) or not raw_days:
        raise fields.fail("weekdays", 'weekdays must be a list such as ["mon", "tue"]')
    days: list[int] = []
    for day in raw_days:
        key = str(day).strip().lower()[:3]
        if key not in WEEKDAYS:
            raise fields.fail("weekdays", f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
        days.append(WEEKDAYS.index(key))
    holidays = _holiday_setting(fields, "holidays", allow_subscriber=True)
    holidays_default = _holiday_setting(fields, "holidays_default", allow_subscriber=False)
    if holidays_default and holidays != "subscriber":
        # Read only for subscribers without a country; alone it would skip nothing.
        raise fields.fail(
            "holidays_default",
            'schedule.holidays_default only applies with holidays = "subscriber" '
            '(for one calendar for everyone, set holidays = "US")',
        )
    return Schedule(
        timezone=tz_name,
        send_time=time(int(match.group(1)), int(match.group(2))),
        weekdays=tuple(sorted(set(days))),
        holidays=holidays,
        holidays_default=holidays_default,
    )


def _parse_lint(fields: _Fields) -> LintSettings:
    # Unknown keys were reported already (CAMPAIGN_KEYS["lint"], with the closest key).
    threshold = fields.data.get("spam_threshold", 5.0)
    # nan and inf are TOML floats, but no score is ever above them: the check could never fail.
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise fields.fail("spam_threshold", "lint.spam_threshold must be a finite number above 0")
    clients = fields.data.get("clients", [])
    if not isinstance(clients, list) or not all(isinstance(c, str) and c for c in clients):
        raise fields.fail(
            "clients", 'lint.clients must be a list such as ["gmail.desktop-webmail", "outlook"]'
        )
    return LintSettings(float(threshold), tuple(clients))


def _parse_tracking(fields: _Fields) -> Tracking:
    values = {}
    for key in ("clicks", "opens"):
        value = fields.data.get(key, False)
        if not isinstance(value, bool):
            raise fields.fail(key, f"tracking.{key} must be true or false")
        values[key] = value
    return Tracking(**values)


def _parse_goal(fields: _Fields) -> str | None:
    if "event" not in fields.data:
        return None
    event = fields.string("event").strip()
    if not re.fullmatch(EVENT_NAME, event):
        raise fields.fail(
            "event", f"goal.event {event!r}: use letters, digits, '.', '_' and '-' (1-100)"
        )
    return event


def _parse_experiment(fields: _Fields) -> int | None:
    value = fields.data.get("winner_after")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= WINNER_AFTER_MAX:
        raise fields.fail(
            "winner_after",
            f"experiment.winner_after must be a whole number of sends per variant from 1 to "
            f"{WINNER_AFTER_MAX:,} (such as 500), not {value!r}",
        )
    return value


def _parse_click_window(fields: _Fields) -> timedelta:
    value = fields.data.get("click_window")
    if value is None:
        return DEFAULT_CLICK_WINDOW
    window = None
    if isinstance(value, str):
        with contextlib.suppress(DriplineError):  # said below, with the bounds, in one message
            window = parse_duration(value, "experiment.click_window")
    if window is None or not timedelta(0) < window <= CLICK_WINDOW_MAX:
        raise fields.fail(
            "click_window",
            'experiment.click_window must be a duration such as "24h", "90m" or "2d" '
            f"(longer than 0, at most 365 days), not {value!r}",
        )
    return window


def _holiday_setting(fields: _Fields, key: str, *, allow_subscriber: bool) -> str | None:
    """A ``[schedule]`` holidays region ("US", "US-CA"), "subscriber", or None when unset."""
    raw = fields.string(key, required=False, default="").strip()
    if not raw:
        return None
    if allow_subscriber and raw.lower() == "subscriber":
        return "subscriber"
    try:
        country, subdivision = parse_region(raw)
    except ValueError as err:
        choices = '"US", "US-CA"' + (' or "subscriber"' if allow_subscriber else "")
        raise fields.fail(key, f"{fields.prefix}{key}: {err}; use {choices}") from err
    return f"{country}-{subdivision}" if subdivision else country


def _split_front_matter(text: str, path: Path) -> tuple[str, str, int]:
    """Split ``+++`` TOML front matter from the body: (front matter, body, body's first line)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _FRONT_MATTER_FENCE:
        raise CampaignError(
            "missing front matter: the file must start with a '+++' line, then TOML "
            "(subject, preheader, day), then another '+++' line",
            path=path,
            line=1,
        )
    for index in range(1, len(lines)):
        if lines[index].strip() == _FRONT_MATTER_FENCE:
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise CampaignError("front matter is not closed by a '+++' line", path=path, line=1)


def _load_step(path: Path, number: int, slug: str) -> Step:
    text = read_utf8(path)
    front, body, body_line = _split_front_matter(text, path)
    data = parse_toml(front, path, first_line=2)
    fields = _Fields(data, front, path, first=2)
    fields.reject_unknown(STEP_KEYS, "the front matter")
    day = data.get("day")
    if "day" not in data:
        raise CampaignError(
            "missing day (days after subscription, e.g. day = 2)", path=path, line=2
        )
    if not isinstance(day, int) or isinstance(day, bool) or day < 0:
        raise fields.fail("day", "day must be a whole number of days, 0 or more")
    if day > DAY_MAX:  # a typo; past the calendar's end it cannot even be scheduled
        raise fields.fail("day", f"day must be at most {DAY_MAX:,} (a hundred years)")
    send = data.get("send")
    if send is not None and send != "immediately":
        raise fields.fail("send", 'send may only be "immediately"')
    if not body.strip():
        raise CampaignError("the email has no body", path=path, line=body_line)
    identity = fields.string("id", required=False, default=slug)
    if not _SLUG.match(identity):
        raise fields.fail(
            "id", f"id must use a-z, 0-9 and '-' (like a file slug), not {identity!r}"
        )
    backfill = data.get("backfill", False)
    if not isinstance(backfill, bool):
        raise fields.fail("backfill", "backfill must be true or false")
    when = fields.string("when", required=False).strip()
    if "when" in data:
        problem = "when must not be empty" if not when else check_when(when)
        if problem:
            raise fields.fail("when", problem)
    subjects = _subjects(fields)
    return Step(
        number=number,
        slug=slug,
        path=path,
        subject=subjects[0] if subjects else fields.string("subject"),
        preheader=fields.string("preheader", required=False),
        day=day,
        send_immediately=send == "immediately",
        body=body,
        body_line=body_line,
        id=identity,
        backfill=backfill,
        when=when,
        subjects=subjects,
    )


def _subjects(fields: _Fields) -> tuple[str, ...]:
    """Front matter ``subjects``: 2 to 4 non-empty strings, and then no ``subject``."""
    if "subjects" not in fields.data:
        return ()
    if "subject" in fields.data:
        raise fields.fail("subjects", "give either subject or subjects (A/B variants), not both")
    value = fields.data["subjects"]
    fewest, most = SUBJECT_VARIANTS
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise fields.fail("subjects", 'subjects must be a list of strings: ["...", "..."]')
    if not fewest <= len(value) <= most:
        raise fields.fail(
            "subjects",
            f"subjects must hold {fewest} to {most} variants (it has {len(value)}); "
            'for one subject use subject = "..."',
        )
    # Compared without white space (also inside {{ }}): "Same" and "Same " would be an
    # A/A test that looks like an A/B test. Letter case may be what is being tested.
    if len({"".join(v.split()) for v in value}) != len(value):
        raise fields.fail("subjects", "two subject variants are the same (apart from white space)")
    return tuple(value)


def _step_files(folder: Path) -> Iterator[tuple[int, str, Path]]:
    for path in sorted(folder.glob("*.md")):
        match = _STEP_FILE.match(path.name)
        if match is None:
            if path.name.lower() != "readme.md":
                raise CampaignError(
                    "email files are named NN-slug.md (e.g. 01-welcome.md)", path=path
                )
            continue
        yield int(match.group(1)), match.group(2), path


def load_campaign(folder: Path) -> Campaign:
    """Load and validate ``folder`` (``campaigns/<slug>``) and every email in it."""
    slug = folder.name
    toml_path = folder / "campaign.toml"
    if not toml_path.is_file():
        if toml_path.exists():  # a folder or a pipe named campaign.toml: say so, never read it
            read_utf8(toml_path)
        raise CampaignError("no campaign.toml in the campaign folder", path=folder)
    if not _SLUG.match(slug):
        raise CampaignError("campaign folder names use a-z, 0-9 and '-'", path=folder)
    text = read_utf8(toml_path)
    root = _Fields(parse_toml(text, toml_path), text, toml_path)
    root.reject_unknown(CAMPAIGN_KEYS[""], "campaign.toml")
    for table in root.data:
        if table and table in CAMPAIGN_KEYS and isinstance(root.data[table], dict):
            root.table(table).reject_unknown(CAMPAIGN_KEYS[table], f"[{table}]")
    sender = root.table("from")
    links = root.table("links")
    footer = root.table("footer")
    utm = {
        key: links.string(key)
        for key in ("utm_source", "utm_medium", "utm_campaign")
        if key in links.data
    }
    reply_to = root.string("reply_to", required=False) or None
    campaign = Campaign(
        slug=slug,
        path=folder,
        name=root.string("name"),
        from_name=sender.string("name"),
        from_address=_check_address(sender, "address", sender.string("address")),
        reply_to=_check_address(root, "reply_to", reply_to) if reply_to else None,
        layout=root.string("layout", required=False, default="base"),
        lang=root.string("lang", required=False, default="en"),
        utm=utm,
        postal_address=footer.string("postal_address"),
        disclaimer=footer.string("disclaimer", required=False),
        schedule=_parse_schedule(root.table("schedule")),
        lint=_parse_lint(root.table("lint")),
        tracking=_parse_tracking(root.table("tracking")),
        goal_event=_parse_goal(root.table("goal")),
        winner_after=_parse_experiment(root.table("experiment")),
        click_window=_parse_click_window(root.table("experiment")),
    )
    for key in ("name",):
        if any(c in getattr(campaign, key) for c in "\r\n\0"):
            raise root.fail(key, f"{key} must be one line")

    steps: list[Step] = []
    numbered: dict[int, Path] = {}
    # The file number only orders the steps (a step's identity is its slug or id): a gap,
    # such as a file deleted without renumbering the rest, is fine; positions are 1, 2, ...
    for position, (number, step_slug, path) in enumerate(_step_files(folder), start=1):
        if number in numbered:
            raise CampaignError(
                f"two files are numbered {number:02d} ({numbered[number].name} and "
                f"{path.name}); give each its own number to set the order",
                path=path,
            )
        numbered[number] = path
        step = _load_step(path, position, step_slug)
        if steps and step.day <= steps[-1].day:
            front = path.read_text(encoding="utf-8")
            raise CampaignError(
                f"day offsets out of order: day {step.day} is not after day {steps[-1].day} "
                f"of {steps[-1].path.name}",
                path=path,
                line=_line_of(front, "day"),
            )
        twin = next((s for s in steps if s.id == step.id), None)
        if twin is not None:
            raise CampaignError(
                f"step identity {step.id!r} is also the identity of {twin.path.name}; "
                "give one of them another file name or an explicit id",
                path=path,
                line=line_of_key(path, "id") or 1,
            )
        steps.append(step)
    if not steps:
        raise CampaignError("the campaign has no emails (add 01-<slug>.md)", path=folder)
    return replace(campaign, steps=tuple(steps))


def step_identities(folder: Path) -> list[str]:
    """Step identities of ``folder`` in file order, even when the campaign does not load.

    Used to map deliveries numbered by position (before identities existed) onto
    identities: a campaign with an error elsewhere still names its steps by file.
    """
    try:
        return list(load_campaign(folder).step_ids)
    except CampaignError:
        pass
    found: list[str] = []
    if folder.is_dir():
        for path in sorted(folder.glob("*.md")):
            match = _STEP_FILE.match(path.name)
            if match is not None:
                found.append(match.group(2))
    return found
