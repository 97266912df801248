"""Fast bulk inserts: rows straight to the driver's ``executemany``.

SQLAlchemy Core spends most of a large ``executemany`` processing each parameter
(about 5 us a row); enrolling a million subscribers writes seven million rows, so
the few column types the store uses (DateTime, JSON) are converted here, once,
and the rest goes to the driver untouched. Unknown drivers fall back to Core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Table, insert

__all__ = ["bulk_insert"]

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@lru_cache(maxsize=200_000)
def _sqlite_time(moment: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime writes and reads back.
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _identity(value: Any) -> Any:
    return value


def _time_converter(value: Any) -> Any:
    return None if value is None else _sqlite_time(value)


def _json_converter(value: Any) -> Any:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _converters(table: Table, columns: Sequence[str], sqlite: bool) -> list[Callable[[Any], Any]]:
    out: list[Callable[[Any], Any]] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, JSON):
            out.append(_json_converter)
        elif isinstance(kind, DateTime) and sqlite:
            out.append(_time_converter)
        else:
            out.append(_identity)
    return out


def bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (values in ``columns`` order; naive UTC datetimes) in one executemany."""
    if not rows:
        return
    placeholder = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if placeholder is None:
        conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    convert = _converters(table, columns, conn.dialect.name == "sqlite")
    # PostgreSQL takes JSON text only with an explicit cast; SQLite stores the text as is.
    cast = "::json" if conn.dialect.name == "postgresql" else ""
    values = ", ".join(
        placeholder + cast if isinstance(table.c[n].type, JSON) else placeholder for n in columns
    )
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values})"
    active = [(i, f) for i, f in enumerate(convert) if f is not _identity]
    if active:
        converted = []
        for row in rows:
            values_list = list(row)
            for index, func in active:
                values_list[index] = func(values_list[index])
            converted.append(tuple(values_list))
        rows = converted
    conn.exec_driver_sql(statement, list(rows))
