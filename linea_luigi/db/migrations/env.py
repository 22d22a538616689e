"""Alembic's environment for linea_luigi: run our revisions on one connection.

Alembic loads this file by path, so imports are absolute. ``db.setup`` passes
its own connection, already in a transaction and holding the migration lock,
as ``config.attributes["connection"]``; Alembic then runs every revision in
that transaction. Without one (Alembic's commands used to write a revision),
it connects to the configured ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from linea_luigi.db.migrations import VERSION_TABLE
from linea_luigi.db.migrations.runner import include_name
from linea_luigi.db.schema import metadata
from linea_luigi.errors import ConfigError


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _migrate(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise ConfigError("No database to migrate: use runner.alembic_config(url=...).")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


_run()
