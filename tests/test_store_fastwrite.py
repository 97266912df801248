"""FastWriter: one transaction per call on a kept connection, on SQLite and PostgreSQL.

What the dispatcher relies on: a call is all or nothing, a failed call leaves the writer
usable, a connection that died while idle is replaced and the call made once more, and
values are stored exactly as SQLAlchemy itself would store them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    text,
    update,
)

from dripline.store import StoreError, make_engine
from dripline.store._fastwrite import FastWriter

META = MetaData()
PROBE = Table(
    "fastwrite_probe",
    META,
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("at", DateTime, nullable=True),
)
MOVE = (
    update(PROBE)
    .where(PROBE.c.id == bindparam("row"), PROBE.c.state == bindparam("expected"))
    .values(state=bindparam("new_state"), at=bindparam("new_at"))
)
ADD = insert(PROBE).values(id=bindparam("new_id"), state="new")
POSTGRES_ENV = "DRIPLINE_TEST_POSTGRES_URL"  # as in conftest.py
AT = datetime(2026, 3, 5, 20, 0, 1, 123456)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    META.drop_all(engine)
    META.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(PROBE), [{"id": n, "state": "sending"} for n in (1, 2, 3)])
    yield engine
    META.drop_all(engine)
    engine.dispose()


def _states(engine: Engine) -> dict[int, tuple[str, datetime | None]]:
    with engine.connect() as conn:
        return {r.id: (r.state, r.at) for r in conn.execute(select(PROBE))}


def test_a_call_is_one_transaction_with_a_row_count_per_step(engine: Engine) -> None:
    writer = FastWriter(engine)
    counts = writer.run(
        [
            (MOVE, {"row": 1, "expected": "sending", "new_state": "sent", "new_at": AT}),
            (MOVE, {"row": 2, "expected": "scheduled", "new_state": "sent", "new_at": AT}),
            (ADD, {"new_id": 4}),
        ]
    )
    assert counts == [1, 0, 1]
    states = _states(engine)
    assert states[1] == ("sent", AT)  # the datetime as SQLAlchemy stores and reads it
    assert states[2] == ("sending", None) and states[4] == ("new", None)
    writer.close_connection()


def test_datetimes_are_stored_exactly_as_sqlalchemy_stores_them(engine: Engine) -> None:
    whole_second = datetime(2026, 3, 5, 20, 0, 0)  # no microseconds: where formats differ
    with engine.begin() as conn:
        conn.execute(update(PROBE).where(PROBE.c.id == 1).values(at=whole_second))
    writer = FastWriter(engine)
    step = {"row": 2, "expected": "sending", "new_state": "sent", "new_at": whole_second}
    assert writer.run([(MOVE, step)]) == [1]
    writer.close_connection()
    with engine.connect() as conn:  # raw SQL: the stored text on SQLite, not a parsed value
        stored = dict(conn.execute(text("SELECT id, at FROM fastwrite_probe")).all())
    assert stored[2] == stored[1] and stored[1] is not None
    with engine.connect() as conn:  # so comparisons in SQL treat both rows alike
        same = conn.scalar(text("SELECT count(*) FROM fastwrite_probe WHERE at = :at"), {
            "at": stored[1]})  # fmt: skip
    assert same == 2


def test_a_failing_step_undoes_the_whole_call_and_the_writer_goes_on(engine: Engine) -> None:
    writer = FastWriter(engine)
    with pytest.raises(StoreError, match=r"^database error: ") as failed:
        writer.run(
            [
                (MOVE, {"row": 1, "expected": "sending", "new_state": "sent", "new_at": AT}),
                (ADD, {"new_id": 2}),  # the primary key is taken
            ]
        )
    assert failed.value.connection_lost is False
    assert _states(engine)[1] == ("sending", None)  # the first step was rolled back
    assert writer.run([(MOVE, {"row": 1, "expected": "sending", "new_state": "failed",
                               "new_at": None})]) == [1]  # fmt: skip
    assert _states(engine)[1] == ("failed", None)
    assert engine.pool.checkedout() == 1  # the one kept connection
    writer.close_connection()
    assert engine.pool.checkedout() == 0  # given back to the pool
    writer.close_connection()  # twice is harmless
    assert writer.run([(ADD, {"new_id": 9})]) == [1]  # a fresh connection after close
    writer.close_connection()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (see .ci/postgres.sh)")
    engine = make_engine(url)
    META.drop_all(engine)
    META.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(PROBE), [{"id": n, "state": "sending"} for n in (1, 2, 3)])
    yield engine
    META.drop_all(engine)
    engine.dispose()


def test_a_connection_killed_while_idle_is_replaced_and_the_call_made_once(
    pg_engine: Engine,
) -> None:
    """A server restart or an idle timeout ends the kept session (PostgreSQL; SQLite is a
    file and has no sessions to lose)."""
    writer = FastWriter(pg_engine)
    assert writer.run([(ADD, {"new_id": 5})]) == [1]
    with pg_engine.connect() as conn:  # an administrator (or a failover) ends the session
        ended = conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.commit()
    assert ended >= 1
    step = (MOVE, {"row": 1, "expected": "sending", "new_state": "sent", "new_at": AT})
    assert writer.run([step]) == [1]
    assert _states(pg_engine)[1] == ("sent", AT)
    assert writer.run([step]) == [0]  # made once: the row is no longer in 'sending'
    writer.close_connection()
