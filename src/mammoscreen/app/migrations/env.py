"""Alembic environment: migrations run on the connection the application hands over (see db.Database.upgrade)."""

from alembic import context

from mammoscreen.app.db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the reader-app migrations through mammoscreen (Database.upgrade), not the alembic CLI")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
