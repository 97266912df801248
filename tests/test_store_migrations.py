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
