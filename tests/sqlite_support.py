"""Faults of a real SQLite store for the tests: a table the code needs is gone for a while."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def table_dropped(database: Path, table: str) -> Iterator[None]:
    """``table`` and its indexes are missing from the SQLite file ``database`` inside the
    block (a read of it fails, as when the database is away), and restored as they were,
    empty, on leaving it."""
    with sqlite3.connect(database) as db:
        saved = [
            sql
            for (sql,) in db.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                "ORDER BY type DESC",  # 'table' before 'index'
                (table,),
            )
        ]
        assert saved, f"no table {table!r} in {database}"
        db.execute(f'DROP TABLE "{table}"')
    try:
        yield
    finally:
        with sqlite3.connect(database) as db:
            for sql in saved:
                db.execute(sql)
