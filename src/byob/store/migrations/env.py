"""Alembic environment: runs on the connection byob hands it (see byob.store.db.migrate)."""

from __future__ import annotations

from alembic import context

from byob.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
