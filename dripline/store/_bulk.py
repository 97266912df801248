"""Fast bulk writes: rows straight to the driver's ``executemany``.

SQLAlchemy Core spends most of a large ``executemany`` (and of a 10,000-value
``IN`` list) processing each parameter, about 5 us a value; enrolling a million
subscribers writes seven million rows. :class:`BulkWriter` lets the caller
prepare values in the database's own form once (a shared due time is converted
once, not once a row) and hands them to the driver untouched. Drivers other than
sqlite3 and psycopg go through Core instead, with the same results.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, insert, text

__all__ = ["BulkWriter"]

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class BulkWriter:
    """Bulk inserts and ``IN`` look-ups on one connection (inside the caller's transaction)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
        self.sqlite = conn.dialect.name == "sqlite"
        self.postgres = conn.dialect.name == "postgresql"

    def time(self, moment: datetime | None) -> Any:
        """A naive UTC datetime in the form the driver stores for a DateTime column."""
        if moment is None or self.placeholder is None or not self.sqlite:
            return moment
        # The text SQLAlchemy's SQLite DateTime writes, and parses when reading back
        # ("%Y-%m-%d %H:%M:%S.%f"); isoformat() is several times faster than strftime().
        value = moment.isoformat(" ")
        return value if moment.microsecond else value + ".000000"

    def json(self, value: Any) -> Any:
        """A JSON column value in the form :meth:`insert` passes on."""
        if self.placeholder is None:
            return value  # Core serializes it
        return json.dumps(value, ensure_ascii=False)

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert prepared ``rows`` (values in ``columns`` order) in one executemany."""
        if not rows:
            return
        if self.placeholder is None:
            self.conn.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])
            return
        # PostgreSQL takes JSON text only with an explicit cast; SQLite stores the text.
        cast = "::json" if self.postgres else ""
        values = ", ".join(
            self.placeholder + cast if isinstance(table.c[n].type, JSON) else self.placeholder
            for n in columns
        )
        statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values})"
        self.conn.exec_driver_sql(statement, list(rows))

    def select_in(self, query: str, values: Sequence[Any], *args: Any) -> list[Any]:
        """Rows of ``query``, whose ``{in}`` is replaced by the placeholders for ``values``.

        ``args`` are bound (in order) before the ``IN`` values: write the query so its
        other placeholders, written ``?``, come first.
        """
        if not values:
            return []
        return list(self.execute_in(query, values, *args))

    def execute_in(self, query: str, values: Sequence[Any], *args: Any) -> Any:
        """Run ``query`` (see :meth:`select_in`); returns the driver-level result."""
        if self.placeholder is None:
            names = {f"arg{i}": a for i, a in enumerate(args)}
            parts = query.replace("{in}", "(:values)").split("?")
            sql = parts[0] + "".join(f":arg{i}{part}" for i, part in enumerate(parts[1:]))
            statement = text(sql).bindparams(bindparam("values", expanding=True))
            return self.conn.execute(statement, {**names, "values": list(values)})
        sql = query.replace("?", self.placeholder)
        if self.postgres and " IN {in}" in sql:
            # One array parameter: the statement text is the same for every list, so
            # psycopg converts it once and PostgreSQL plans no list of 500 parameters.
            return self.conn.exec_driver_sql(
                sql.replace(" IN {in}", " = ANY(%s)"), (*args, list(values))
            )
        marks = ", ".join([self.placeholder] * len(values))
        return self.conn.exec_driver_sql(sql.replace("{in}", f"({marks})"), (*args, *values))
