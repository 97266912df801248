"""The shipped Alembic migrations create exactly the schema the models describe, and keep
the rows of a database made at the first revision meaningful through every later one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, inspect, text

from dripline.campaign import Campaign
from dripline.store import (
    SqlDeliveryQueue,
    campaign_status,
    current_revision,
    head_revision,
    make_engine,
    open_store,
    subscriber_timeline,
    upgrade,
    write_transaction,
)
from dripline.store._migrate import _config
from dripline.store._models import Base
from dripline.timetable import Timetable

ROOT = Path(__file__).resolve().parent.parent  # the repository: its campaigns/ and templates/


def test_first_use_migrates_to_head_and_schema_matches_models(engine: Engine):
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("deliveries")}
    assert indexes["ix_deliveries_status_due"] == ["status", "due_at", "id"]


def test_upgrade_twice_is_a_no_op(engine: Engine):
    assert upgrade(engine) == (head_revision(), head_revision())


def test_sqlite_runs_in_wal_mode_with_busy_timeout(sqlite_url: str):
    engine = open_store(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    engine.dispose()


# --- every migration, from the first revision, on a database that holds rows ---
#
# The database is built at revision 0001 and filled with the rows a user of 0001 had
# (an active subscriber half-way through the campaign, an unsubscribed one, a failed
# delivery), then upgraded one revision at a time to head. After every revision the
# rows 0001 wrote must read back the same; at head the current code must still make
# sense of them (status counts, timeline, the dispatcher's claim). A new migration is
# covered without touching this test; one that deliberately rewrites stored values
# adds its mapping to REWRITES, and one with new tables worth checking adds a check.

SLUG = "ketamine-therapy"
T = datetime(2026, 3, 5, 20, 0)  # naive UTC, as the tables hold it

SUBSCRIBERS = [
    # id, email_key, email, name, first_name, timezone, attributes, status
    (1, "ada@example.com", "Ada@Example.com", "Ada Lovelace", "Ada", "America/Los_Angeles",
     {"plan": "gold"}, "active"),
    (2, "bob@example.com", "bob@example.com", "Bob", "Bob", None, {}, "unsubscribed"),
    (3, "cy@example.com", "cy@example.com", "", "", "Europe/London", {"n": 3}, "active"),
]  # fmt: skip
_SUBSCRIBER_COLUMNS = (
    "id",
    "email_key",
    "email",
    "name",
    "first_name",
    "timezone",
    "attributes",
    "status",
)
ENROLLMENTS = [(1, 1, "active"), (2, 2, "unsubscribed"), (3, 3, "active")]  # id = subscriber
ADA_DUE = [T, *(datetime(2026, 3, d, 16, 0) for d in (9, 10, 11, 13, 16))]


def _deliveries() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for enrollment in (1, 2, 3):
        for step, due in enumerate(ADA_DUE, start=1):
            row: dict[str, object] = {
                "enrollment_id": enrollment,
                "step": step,
                "due_at": due,
                "status": "scheduled",
                "attempts": 0,
                "first_attempt_at": None,
                "last_error": None,
                "message_id": None,
                "sent_at": None,
                "reply": None,
            }
            if enrollment == 1 and step == 1:
                row |= {"status": "sent", "attempts": 1, "first_attempt_at": T, "sent_at": T,
                        "message_id": "<1.1@example.test>", "reply": "250 2.0.0 Ok"}  # fmt: skip
            elif enrollment == 2:
                row |= {"status": "cancelled", "last_error": "subscriber unsubscribed"}
            elif enrollment == 3 and step == 1:
                row |= {"status": "failed", "attempts": 3, "first_attempt_at": T,
                        "last_error": "550 5.1.1 no such user"}  # fmt: skip
            rows.append(row)
    return rows


# revision -> how it rewrites the snapshot taken before it (identity when absent)
REWRITES: dict[str, Callable[[dict[str, list[tuple]]], dict[str, list[tuple]]]] = {}

_SNAPSHOT = {
    "subscribers": "SELECT id, email_key, email, name, first_name, timezone, status, "
    "consent_at, consent_source, created_at FROM subscribers ORDER BY id",
    "enrollments": "SELECT id, subscriber_id, campaign, enrolled_at, status "
    "FROM enrollments ORDER BY id",
    "deliveries": "SELECT enrollment_id, step, due_at, status, attempts, first_attempt_at, "
    "last_error, message_id, sent_at, reply FROM deliveries ORDER BY enrollment_id, step",
}


def _snapshot(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        snap = {
            name: [tuple(r) for r in conn.execute(text(sql))] for name, sql in _SNAPSHOT.items()
        }
        attributes = conn.execute(text("SELECT attributes FROM subscribers ORDER BY id"))
        snap["attributes"] = [(json.loads(a) if isinstance(a, str) else a,) for (a,) in attributes]
    # SQLite hands raw DateTime columns back as text: compare moments, not spellings.
    return {name: [tuple(_moment(v) for v in row) for row in rows] for name, rows in snap.items()}


def _moment(value: object) -> object:
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        return datetime.fromisoformat(value)
    return value


def _fill_revision_0001(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn, only=["subscribers", "enrollments", "deliveries"])
        conn.execute(
            tables.tables["subscribers"].insert(),
            [
                dict(zip(_SUBSCRIBER_COLUMNS, row, strict=True))
                | {"consent_at": T, "consent_source": "import people.csv", "created_at": T}
                for row in SUBSCRIBERS
            ],
        )
        conn.execute(
            tables.tables["enrollments"].insert(),
            [
                {"id": i, "subscriber_id": s, "campaign": SLUG, "enrolled_at": T, "status": st}
                for i, s, st in ENROLLMENTS
            ],
        )
        conn.execute(tables.tables["deliveries"].insert(), _deliveries())


def _chain() -> list[str]:
    """Every revision, oldest first."""
    return [
        r.revision for r in reversed(list(ScriptDirectory.from_config(_config()).walk_revisions()))
    ]


def test_rows_written_at_0001_stay_meaningful_through_every_migration(
    db_url: str, campaign: Campaign
):
    chain = _chain()
    assert chain[0] == "0001" and chain[-1] == head_revision()
    engine = make_engine(db_url)
    try:
        _upgrade_to(engine, "0001")
        _fill_revision_0001(engine)
        expected = _snapshot(engine)
        assert len(expected["deliveries"]) == 18
        for revision in chain[1:]:
            _upgrade_to(engine, revision)
            assert current_revision(engine) == revision
            expected = REWRITES.get(revision, lambda snap: snap)(expected)
            assert _snapshot(engine) == expected, f"rows changed meaning at {revision}"

        # 0002: every subscriber already on file got a distinct key for their links.
        with engine.connect() as conn:
            keys = conn.scalars(text("SELECT public_key FROM subscribers")).all()
        assert len(set(keys)) == 3 and all(k and len(k) >= 16 for k in keys)

        # Head: the schema is the models' and today's code reads the old rows right.
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        status = campaign_status(engine, SLUG)
        assert (status.enrolled, status.unsubscribed, status.bounced) == (3, 1, 0)
        step1 = status.steps[0]
        assert (step1.step, step1.counts["sent"], step1.counts["failed"]) == (1, 1, 1)
        assert step1.counts["cancelled"] == 1
        timeline = subscriber_timeline(engine, SLUG, "ADA@example.com")
        assert [(e.step, e.status) for e in timeline][:2] == [(1, "sent"), (2, "scheduled")]
        assert [e.due_at for e in timeline] == [d.replace(tzinfo=UTC) for d in ADA_DUE]
        assert timeline[0].sent_at == T.replace(tzinfo=UTC)

        queue = SqlDeliveryQueue(engine, lambda slug: Timetable.of(campaign))
        now = datetime(2026, 3, 9, 16, 0, 1, tzinfo=UTC)
        claimed = queue.claim_due(now, 10)
        # Ada's step 2 and Cy's step 2 are due; Bob's are cancelled, Cy's step 1 failed.
        assert sorted((c.email, c.step, c.attempt) for c in claimed) == [
            ("Ada@Example.com", 2, 1),
            ("cy@example.com", 2, 1),
        ]
        ada = next(c for c in claimed if c.step == 2 and c.first_name == "Ada")
        assert ada.attributes == {"plan": "gold"} and ada.timezone == "America/Los_Angeles"
        assert ada.public_key in keys
        queue.close()
    finally:
        engine.dispose()


def _upgrade_to(engine: Engine, revision: str, campaigns_dir: Path | None = None) -> None:
    config = _config()
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        config.attributes["campaigns_dir"] = campaigns_dir
        command.upgrade(config, revision)


def test_0004_maps_numbered_deliveries_onto_step_identities(db_url: str, project: Path):
    """Rows written before identities existed keep their step, by today's file numbering."""
    engine = make_engine(db_url)
    _upgrade_to(engine, "0002")
    with write_transaction(engine) as conn:
        for sid, email in ((1, "a@example.com"), (2, "b@example.com")):
            conn.execute(
                text(
                    "INSERT INTO subscribers (id, email_key, email, name, first_name, attributes, "
                    "status, consent_at, consent_source, created_at) VALUES (:id, :e, :e, '', '', "
                    "'{}', 'active', '2026-03-01', 'test', '2026-03-01')"
                ),
                {"id": sid, "e": email},
            )
        conn.execute(
            text(
                "INSERT INTO enrollments (id, subscriber_id, campaign, enrolled_at, status) VALUES "
                "(1, 1, 'ketamine-therapy', '2026-03-02', 'active'), "
                "(2, 2, 'gone-campaign', '2026-03-02', 'active')"
            )
        )
        for enrollment, steps in ((1, range(1, 7)), (2, range(1, 3))):
            for step in steps:
                conn.execute(
                    text(
                        "INSERT INTO deliveries (enrollment_id, step, due_at, status, attempts) "
                        "VALUES (:e, :s, '2026-03-05', :status, 0)"
                    ),
                    {"e": enrollment, "s": step, "status": "sent" if step == 1 else "scheduled"},
                )
    # One step has an explicit id in its front matter: that is its identity.
    step3 = project / "campaigns" / "ketamine-therapy" / "03-neuroplasticity.md"
    step3.write_text(step3.read_text().replace("day = 4", 'day = 4\nid = "brain"', 1))
    _upgrade_to(engine, "head", project / "campaigns")
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT enrollment_id, step, step_id, status FROM deliveries "
                "ORDER BY enrollment_id, step"
            )
        ).all()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert [tuple(r) for r in rows] == [
        (1, 1, "rapid-relief", "sent"),
        (1, 2, "treatment-resistant", "scheduled"),
        (1, 3, "brain", "scheduled"),
        (1, 4, "fewer-side-effects", "scheduled"),
        (1, 5, "holistic-health", "scheduled"),
        (1, 6, "other-therapies", "scheduled"),
        (2, 1, "step-1", "sent"),
        (2, 2, "step-2", "scheduled"),
    ]
    engine.dispose()


def test_leases_migration_keeps_rows_and_turns_rows_stuck_in_sending_ambiguous(db_url: str):
    """0003 on a database holding deliveries: a row a crash left in 'sending' (before leases
    nobody could hand it back) becomes 'ambiguous'; everything else is kept as it was."""
    from alembic import command

    from dripline.store import make_engine, write_transaction
    from dripline.store._migrate import _config

    engine = make_engine(db_url)
    config = _config()
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")  # the revision before 0003
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO subscribers (id, email_key, email, name, first_name, attributes, "
                "status, consent_at, consent_source, created_at, public_key) VALUES (1, "
                "'a@example.com', 'a@example.com', 'A', 'A', '{}', 'active', "
                "'2026-03-01 00:00:00', 'test', '2026-03-01 00:00:00', 'k1')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO enrollments (id, subscriber_id, campaign, enrolled_at, status) "
                "VALUES (1, 1, 'ketamine-therapy', '2026-03-01 00:00:00', 'active')"
            )
        )
        for step, status in ((1, "sent"), (2, "sending"), (3, "scheduled")):
            conn.execute(
                text(
                    "INSERT INTO deliveries (enrollment_id, step, due_at, status, attempts) "
                    "VALUES (1, :step, '2026-03-02 17:00:00', :status, 1)"
                ),
                {"step": step, "status": status},
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT step, status, worker_id FROM deliveries ORDER BY step")
        ).all()
        workers = conn.scalar(text("SELECT count(*) FROM workers"))
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        (1, "sent", None),
        (2, "ambiguous", None),
        (3, "scheduled", None),
    ]
    assert workers == 0


def _downgrade_to(engine: Engine, revision: str) -> None:
    config = _config()
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        config.attributes["campaigns_dir"] = None
        command.downgrade(config, revision)


def test_0016_records_no_winner_rows_and_downgrading_drops_only_those(db_url: str):
    engine = make_engine(db_url)
    row = (
        "INSERT INTO experiment_winners (campaign, step_id, variant, subject, decided_at, z, "
        "p_value, tallies) VALUES (:c, :s, :v, :subject, :t, 0.5, :p, :tallies)"
    )
    tallies = json.dumps([{"variant": 1, "sent": 500, "clicks": 40}])
    try:
        _upgrade_to(engine, "0012")
        with write_transaction(engine) as conn:
            winner = {"c": SLUG, "s": "a", "v": 1, "subject": "A", "t": T, "p": 0.01}
            conn.execute(text(row), winner | {"tallies": tallies})
        _upgrade_to(engine, "0016")
        with write_transaction(engine) as conn:  # judged: no significant difference
            none = {"c": SLUG, "s": "b", "v": None, "subject": None, "t": T, "p": 0.31}
            conn.execute(text(row), none | {"tallies": tallies})
        with engine.connect() as conn:
            kept = conn.execute(
                text("SELECT step_id, variant, subject, p_value FROM experiment_winners")
            ).all()
        assert sorted(kept, key=lambda r: r[0]) == [("a", 1, "A", 0.01), ("b", None, None, 0.31)]
        _downgrade_to(engine, "-1")  # undo 0016 only: the older code would judge b again
        with engine.connect() as conn:
            left = conn.execute(text("SELECT step_id, variant FROM experiment_winners")).all()
        assert left == [("a", 1)]
    finally:
        engine.dispose()


def test_a_database_deleted_under_a_live_process_is_one_error_line(tmp_path: Path):
    """probe-18c LOW g: `dripline serve` holds the SQLite file, someone deletes it (its -wal
    and -shm stay): the next command says so in one line, no traceback."""
    db = tmp_path / "k.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    holder = engine.raw_connection()  # as a running `dripline serve` would
    try:
        holder.cursor().execute("CREATE TABLE held (x)")
        holder.commit()
        db.unlink()
        (tmp_path / "p.csv").write_text("email,name\nx1@example.com,X\n")
        env = {**os.environ, "DRIPLINE_DATABASE_URL": str(db), "DRIPLINE_ROOT": str(ROOT)}
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dripline")), "import", "p.csv", "--campaign",
             "ketamine-therapy"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        holder.close()
        engine.dispose()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"Error: cannot open the database sqlite:///{db}: ")
    assert "-wal or -shm file" in done.stderr
