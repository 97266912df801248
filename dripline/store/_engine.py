"""Engines for the store: SQLite tuned for a dispatcher (WAL, busy timeout), any other URL as is.

On SQLite, pysqlite's own transaction handling is switched off so dripline
decides how each transaction begins: ``BEGIN IMMEDIATE`` for writers (a claim
takes the write lock up front instead of failing to upgrade a read lock, which
no busy timeout can fix), plain ``BEGIN`` for readers.

On PostgreSQL every session is told how long it may sit in a transaction and wait
for a lock (:func:`stall_limits`, a third of the worker lease): a worker that is
stopped (SIGSTOP, a debugger, a VM paused) or hangs half-way through a transaction
would otherwise hold its row locks and the maintenance lock for ever, and the
other workers would wait on them. The server ends such a session (rolling its
transaction back) well before the lease runs out, so when the lease expires the
stalled worker's rows can be handed back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from ..errors import ConfigError
from ..settings import redact_url

__all__ = [
    "BUSY_TIMEOUT_MS",
    "StoreError",
    "make_engine",
    "read_transaction",
    "stall_limits",
    "write_transaction",
]

BUSY_TIMEOUT_MS = 30_000
# dripline's default lease (dripline.store._leases.DEFAULT_LEASE_SECONDS), for engines
# made without one (commands other than `dripline run`).
_DEFAULT_LEASE_SECONDS = 60.0
CACHE_KIB = 64 * 1024


class StoreError(ConfigError):
    """The database cannot be opened or used (bad URL, missing driver, unreachable)."""

    connection_lost: bool = False  # the database connection died (worth one retry)


def _is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def stall_limits(lease_seconds: float) -> tuple[int, int]:
    """``(idle_in_transaction_session_timeout, lock_timeout)`` in milliseconds for a lease.

    A third of the lease each (at least 1 s): a session idle inside a transaction that
    long is a stalled process (dripline's transactions take milliseconds), and a lock
    wait that long is a wait on one.
    """
    limit = max(1000, int(lease_seconds * 1000 / 3))
    return limit, limit


def make_engine(url: str, *, lease_seconds: float | None = None) -> Engine:
    """An engine for ``url``; the error names the URL with its password masked.

    ``lease_seconds`` (the worker lease, default 60) sets the PostgreSQL sessions'
    :func:`stall_limits`. Raises StoreError.
    """
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_engine(
                parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
            )
            _tune_sqlite(engine)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
            if engine.dialect.name == "postgresql":
                _limit_stalls(engine, lease_seconds or _DEFAULT_LEASE_SECONDS)
    except (ArgumentError, NoSuchModuleError, ImportError) as err:
        raise StoreError(f"cannot use database {redact_url(url)}: {err}") from err
    return engine


def _limit_stalls(engine: Engine, lease_seconds: float) -> None:
    idle_ms, lock_ms = stall_limits(lease_seconds)

    @event.listens_for(engine, "do_connect")
    def _on_connect(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        # Session settings sent with the connection (no extra round trip). The process id
        # in application_name lets an operator (and the stall test) tell workers apart
        # in pg_stat_activity; read at connect time, so a forked worker shows its own.
        settings = f"-c idle_in_transaction_session_timeout={idle_ms} -c lock_timeout={lock_ms}"
        params["options"] = f"{params.get('options', '')} {settings}".strip()
        params.setdefault("application_name", f"dripline pid {os.getpid()}")


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # WAL: readers (dripline status) never block the dispatcher and vice versa.
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # 64 MiB of page cache (default 2 MiB): the subscribers' email index takes
            # inserts all over its B-tree, and with millions of rows a small cache turns
            # every insert into page reads.
            cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            # A big transaction (an index build) grows the WAL file; without a limit it
            # keeps that size on disk forever after the checkpoint.
            cursor.execute(f"PRAGMA journal_size_limit = {CACHE_KIB * 1024}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("dripline_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
    try:
        with engine.connect() as raw:
            connection = raw.execution_options(dripline_write=True)
            with connection.begin():
                yield connection
    except OperationalError as err:
        failure = StoreError(f"database error on {redact_url(str(engine.url))}: {err.orig}")
        # The server ended the session (a restart, or the stall limits above after this
        # process was stopped): the transaction was rolled back, and the pool has
        # discarded the connection, so the caller may try the whole transaction again.
        failure.connection_lost = bool(err.connection_invalidated)
        raise failure from err


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: a consistent snapshot for reports."""
    try:
        with engine.connect() as connection, connection.begin():
            yield connection
    except OperationalError as err:
        raise StoreError(f"database error on {redact_url(str(engine.url))}: {err.orig}") from err
