"""Alembic, configured in code: the migrations live in ``dripline/store/migrations``.

No ``alembic.ini`` is needed anywhere; ``dripline db upgrade`` and the first use
of a store both call :func:`upgrade`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from ..settings import redact_url
from ._engine import StoreError, write_transaction

__all__ = ["current_revision", "head_revision", "upgrade"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the store ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema's revision (None before the first). Raises StoreError: the first thing a
    command asks the database, so a file it cannot open is said here, not as a traceback."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as err:
        raise StoreError(
            f"cannot open the database {redact_url(str(engine.url))}: {err.orig} (on SQLite: "
            "is a -wal or -shm file left beside a database that was deleted or replaced?)"
        ) from err


def upgrade(engine: Engine, campaigns_dir: Path | None = None) -> tuple[str | None, str]:
    """Bring the schema to the newest revision: (revision before, revision after).

    ``campaigns_dir`` lets migrations that need the campaign files read them (revision
    0004 maps deliveries numbered by position onto step identities).
    """
    before = current_revision(engine)
    head = head_revision()
    if before == head:
        return before, head
    config = _config()
    # One write transaction around the whole upgrade: a second process waits for it, then
    # finds the schema current and does nothing.
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        config.attributes["campaigns_dir"] = campaigns_dir
        command.upgrade(config, "head")
    return before, head
