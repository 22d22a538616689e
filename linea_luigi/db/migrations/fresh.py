"""The schema state read, and an empty database created, without Alembic.

Importing and running Alembic costs ~150 ms, and every new database (each
pipeline's first run, each test) used to pay it only to replay the revisions
onto nothing. An empty database instead gets the head schema straight from the
models (``metadata.create_all``) and a version table made exactly as Alembic
makes it, stamped ``HEAD``; ``tests/test_migrations.py`` proves the result
equals what the revisions make, table by table (so a model change without its
revision fails there). Whatever is not empty and not at ``HEAD`` (an older
revision, a database to adopt, a newer one) goes through Alembic (``runner``).

"Empty" means none of our tables and no version table: other applications'
tables may be there. ``metadata`` holds Luigi's task-history tables too:
``linea_luigi.db`` imports ``db.history_schema`` before anything here runs.

The caller holds the migration lock and the transaction (``db.setup``), so
deciding "empty" and creating happen as one step. This module must not import
Alembic.
"""

from __future__ import annotations

import enum

from sqlalchemy import Column, Connection, MetaData, PrimaryKeyConstraint, String, Table, inspect

from ..schema import metadata
from . import HEAD, VERSION_TABLE

#: Alembic's version table, as ``DefaultImpl.version_table_impl`` declares it
_VERSION = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)


class Found(enum.Enum):
    """What a database holds of ours, as far as deciding whether Alembic is needed."""

    #: none of our tables and no version table: ``create`` makes the schema
    EMPTY = "empty"
    #: recorded at ``HEAD`` and nothing else: nothing to do
    CURRENT = "current"
    #: anything else: Alembic decides (upgrade, adopt, or refuse)
    OTHER = "other"


def found(conn: Connection) -> Found:
    """Classify the database on ``conn``: two cheap reads at most."""
    tables = set(inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        revisions = conn.execute(_VERSION.select()).scalars().all()
        return Found.CURRENT if revisions == [HEAD] else Found.OTHER
    return Found.EMPTY if tables.isdisjoint(metadata.tables) else Found.OTHER


def create(conn: Connection) -> None:
    """Create the head schema on an empty database and stamp it ``HEAD``."""
    metadata.create_all(conn, checkfirst=False)  # found() saw none of them, under the lock
    _VERSION.create(conn, checkfirst=False)
    conn.execute(_VERSION.insert().values(version_num=HEAD))
