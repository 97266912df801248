"""The shipped Alembic migrations create exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from dripline.store import current_revision, head_revision, open_store, upgrade
from dripline.store._models import Base


def test_first_use_migrates_to_head_and_schema_matches_models(engine: Engine):
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("deliveries")}
    assert indexes["ix_deliveries_status_due"] == ["status", "due_at"]


def test_upgrade_twice_is_a_no_op(engine: Engine):
    assert upgrade(engine) == (head_revision(), head_revision())


def test_sqlite_runs_in_wal_mode_with_busy_timeout(sqlite_url: str):
    engine = open_store(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
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
