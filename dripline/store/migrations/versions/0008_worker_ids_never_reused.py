"""Worker ids are never given out again (SQLite ``AUTOINCREMENT``).

A worker row is deleted when its lease is found dead, but the process may only have
been paused (SIGSTOP, a frozen VM). If a new worker then got the same id, the old one,
waking up, would take the new one's claims for its own and send them a second time.
PostgreSQL's sequence never reuses an id; SQLite's plain ``INTEGER PRIMARY KEY`` hands
out ``max(id) + 1`` again, so on SQLite the table is rebuilt with ``AUTOINCREMENT``,
its counter starting above every id still named by a delivery.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = "id, host, pid, started_at, heartbeat_at, lease_expires_at"


def _rebuild(autoincrement: bool) -> None:
    key = "INTEGER NOT NULL PRIMARY KEY" + (" AUTOINCREMENT" if autoincrement else "")
    op.execute(
        f"CREATE TABLE workers_new (id {key}, host VARCHAR(255) NOT NULL, "
        "pid INTEGER NOT NULL, started_at DATETIME NOT NULL, "
        "heartbeat_at DATETIME NOT NULL, lease_expires_at DATETIME NOT NULL)"
    )
    op.execute(f"INSERT INTO workers_new ({_COLUMNS}) SELECT {_COLUMNS} FROM workers")
    op.execute("DROP TABLE workers")
    op.execute("ALTER TABLE workers_new RENAME TO workers")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild(autoincrement=True)
    # Ids an ambiguous delivery still names (and any worker id given out so far) stay taken.
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'workers'")
    op.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'workers', MAX(COALESCE(("
        "SELECT MAX(id) FROM workers), 0), COALESCE((SELECT MAX(worker_id) FROM deliveries), 0))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(autoincrement=False)
