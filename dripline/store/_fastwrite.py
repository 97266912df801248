"""Short write transactions on one raw driver connection, for the dispatcher's hot path.

Recording a delivery's outcome is one tiny transaction per message. Through
SQLAlchemy's Connection that costs about 250 µs on SQLite, most of it Python
bookkeeping; the same statements on a kept DB-API connection cost a tenth. The
statements are still built with SQLAlchemy (so they are right for SQLite and
PostgreSQL alike) and compiled once; values go through the dialect's own bind
processors, so a datetime is stored exactly as SQLAlchemy would store it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.sql import ClauseElement

from ._engine import StoreError

__all__ = ["FastWriter"]

T = TypeVar("T")


class _Compiled:
    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = compiled.string
        self.positional = compiled.positional
        self.order = list(compiled.positiontup or [])
        self.processors = {
            name: bind.type.bind_processor(engine.dialect) for name, bind in compiled.binds.items()
        }
        self.literals = {
            name: bind.value for name, bind in compiled.binds.items() if bind.value is not None
        }

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        merged = {**self.literals, **values}
        converted = {}
        for name, value in merged.items():
            processor = self.processors.get(name)
            converted[name] = processor(value) if processor and value is not None else value
        if self.positional:
            return [converted[name] for name in self.order]
        return converted


class FastWriter:
    """Runs a few prepared statements as one transaction on a dedicated connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self._compiled: dict[int, _Compiled] = {}
        self._connection: Any = None
        self._lock = threading.Lock()

    def _prepared(self, statement: ClauseElement) -> _Compiled:
        key = id(statement)
        if key not in self._compiled:
            self._compiled[key] = _Compiled(statement, self.engine)
        return self._compiled[key]

    def run(self, steps: Sequence[tuple[ClauseElement, Mapping[str, Any]]]) -> list[int]:
        """Execute ``steps`` in one transaction; the row count of each.

        A kept connection can die while idle (a server restart, an idle timeout, a
        failover). Then the transaction is tried once more on a fresh connection: the
        statements only move rows that are still in the state they expect, so a
        transaction that did commit before the connection died changes nothing twice.
        """

        def body(cursor: Any) -> list[int]:
            counts = []
            for statement, values in steps:
                prepared = self._prepared(statement)
                cursor.execute(prepared.sql, prepared.parameters(values))
                counts.append(cursor.rowcount)
            return counts

        return self.transaction(body)

    def transaction(self, body: Callable[[Any], T]) -> T:
        """``body(cursor)`` inside one transaction on the kept connection; its result.

        ``body`` must be safe to run twice (it is, when it only moves rows that are
        still in the state it expects): a connection lost mid-way is retried once.
        """
        try:
            return self._transaction_once(body)
        except StoreError as err:
            if not err.connection_lost:
                raise
            return self._transaction_once(body)

    def _transaction_once(self, body: Callable[[Any], T]) -> T:
        with self._lock:
            if self._connection is None:
                self._connection = self.engine.raw_connection()
            connection = self._connection
            cursor = connection.cursor()
            try:
                if self.sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                result = body(cursor)
                if self.sqlite:
                    cursor.execute("COMMIT")
                else:
                    connection.commit()
                return result
            except Exception as err:
                dbapi_error = isinstance(err, self.engine.dialect.loaded_dbapi.Error)
                lost = dbapi_error and self.engine.dialect.is_disconnect(err, connection, cursor)
                if not lost:
                    try:
                        if self.sqlite:
                            cursor.execute("ROLLBACK")
                        else:
                            connection.rollback()
                    except Exception:  # the connection is unusable after all
                        lost = True
                if lost:  # start afresh on the next call
                    self._discard_connection()
                if dbapi_error:
                    failure = StoreError(f"database error: {err}")
                    failure.connection_lost = lost
                    raise failure from err
                raise
            finally:
                with contextlib.suppress(Exception):  # a cursor of a dead connection
                    cursor.close()

    def _discard_connection(self) -> None:
        """Forget a dead connection: the pool must not hand it out again."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already gone
                connection.invalidate()

    def close_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
