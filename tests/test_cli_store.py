"""``--db`` (dripline/cli/_store.py): read-only commands never create a database, and a file
that is not a dripline database is one clear line, never a traceback.

Real ``dripline`` processes; the file system is read back.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

DRIPLINE = str(Path(sys.executable).with_name("dripline"))

# Commands that only read the database, or change only what is already there.
READERS = [
    ("history", "ana@example.com"),
    ("suppress", "list"),
    ("suppress", "export"),
    ("plan",),
    ("apply", "--yes"),
    ("requeue", "--ambiguous"),
    ("status",),
    ("bounces", "list"),
    ("bounces", "show", "1"),
    ("bounces", "undo", "1"),
    ("report", "ketamine-therapy"),
    ("timeline", "ketamine-therapy", "--email", "ana@example.com"),
    ("subscriber", "show", "ana@example.com"),
    ("subscriber", "set", "ana@example.com", "plan=pro"),
    ("event", "ana@example.com", "booked-consult"),
]


def dripline(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIPLINE_")}
    return subprocess.run(
        [DRIPLINE, "--root", str(project), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_a_read_only_command_refuses_a_missing_database_and_creates_none(project, args):
    missing = project / "nothing-here.db"
    done = dripline(project, *args, "--db", str(missing))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: no database at {missing}: nothing was enrolled there yet (`dripline "
        "subscribe` and `dripline import` create it); use --db FILE for another one, e.g. "
        "--db demo/dripline.db after `dripline demo`"
    ]
    assert not missing.exists() and not (project / "dripline.db").exists()
    # The default database (dripline.db in the project) is not created either.
    done = dripline(project, *args)
    assert done.returncode == 1 and "Error: no database at" in done.stderr
    assert sorted(p.name for p in project.iterdir()) == ["campaigns", "templates"]


@pytest.mark.parametrize(
    "args", [*READERS, ("subscribe", "ana@example.com", "--campaign", "ketamine-therapy")], ids=str
)
def test_a_file_that_is_not_a_database_is_named_without_a_traceback(project, args):
    notes = project / "subscribers.csv"
    notes.write_text("email\nana@example.com\n", encoding="utf-8")
    done = dripline(project, *args, "--db", str(notes))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: {notes} is not a dripline database (SQLite cannot read it: file is not a "
        "database): use --db FILE for the right one"
    ]
    assert notes.read_text(encoding="utf-8") == "email\nana@example.com\n"  # untouched


def test_another_programs_sqlite_database_is_not_taken_over(project):
    other = project / "crm.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE contacts (email TEXT)")
    done = dripline(project, "suppress", "list", "--db", str(other))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: {other} is not a dripline database (it holds no dripline tables): use --db "
        "FILE for the right one"
    ]
    with sqlite3.connect(other) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master")]
    assert tables == ["contacts"]


def test_a_directory_given_as_the_database_is_named(project):
    done = dripline(project, "status", "--db", str(project / "campaigns"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: {project / 'campaigns'} is not a dripline database: it is a directory; "
        "--db names a file"
    ]
