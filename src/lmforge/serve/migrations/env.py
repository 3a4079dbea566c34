"""Alembic's entry point: run the migrations on the connection that ``serve/store.py``
``_migrate`` passes in (never from an ini file or a URL of its own).

This folder is Alembic's script directory, read as files (package data), not a Python
package. A new migration goes in ``versions/``, its revision the next number."""

from alembic import context

from lmforge.serve.store import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    version_table=VERSION_TABLE,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
