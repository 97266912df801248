"""Alembic environment, configured programmatically by :mod:`dripline.store._migrate`.

The caller hands over an open connection in ``config.attributes["connection"]``
(already inside a write transaction, which on SQLite is ``BEGIN IMMEDIATE``, so
two processes starting at once migrate one after the other).
"""

from __future__ import annotations

from alembic import context

from dripline.store._models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
