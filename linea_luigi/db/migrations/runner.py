"""Alembic driven on a connection the caller holds: read, adopt, upgrade, compare.

Every function here works inside the caller's transaction (``db.setup`` holds
the lock around it) and commits nothing itself; Alembic sees a connection
already in a transaction and so runs every revision in it. Imported only when
a database is not current: Alembic is slow to import.
"""

from __future__ import annotations

import functools
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from ..schema import metadata
from . import BASELINE, LOCATION, VERSION_TABLE


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """A file-less Alembic configuration for our scripts.

    With ``connection``, ``env.py`` migrates on it; otherwise it connects to
    ``url`` (for writing new revisions with Alembic's commands).
    """
    config = Config()
    config.set_main_option("script_location", str(LOCATION).replace("%", "%%"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def revisions() -> list[str]:
    """Every revision this package ships, oldest first."""
    return [s.revision for s in reversed(list(script().walk_revisions()))]


def current(conn: Connection) -> tuple[str, ...]:
    """The revisions recorded in the version table; empty when it is missing or empty."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return tuple(context.get_current_heads())


def unknown(heads: tuple[str, ...]) -> list[str]:
    """The recorded revisions this package does not ship (a newer one wrote them)."""
    known = set(revisions())
    return [head for head in heads if head not in known]


def upgrade(conn: Connection, target: str = "head") -> None:
    command.upgrade(alembic_config(conn), target)


def stamp(conn: Connection, revision: str) -> None:
    """Record ``revision`` without running anything (for a database already at it)."""
    command.stamp(alembic_config(conn), revision)


def adopt(conn: Connection) -> bool:
    """Stamp a database made by ``create_all`` before migrations; False if there is none.

    Such a database has the artifact tables and no version table. Its schema
    is the baseline's, except that schema version 1 (before BLAKE3) stored a
    bare sha256 hex in ``sha256``: that column becomes ``digest`` first, in
    place, so every row and id stays as it was.
    """
    if not inspect(conn).has_table("ll_artifacts"):
        return False
    columns = {c["name"] for c in inspect(conn).get_columns("ll_artifacts")}
    if "digest" not in columns:
        _digest_from_sha256(conn)
    stamp(conn, BASELINE)
    return True


def _digest_from_sha256(conn: Connection) -> None:
    """Schema version 1 -> 2: ``sha256`` (bare hex) becomes ``digest`` (``"sha256:<hex>"``)."""
    conn.execute(text("ALTER TABLE ll_artifacts RENAME COLUMN sha256 TO digest"))
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE ll_artifacts ALTER COLUMN digest TYPE VARCHAR(80)"))
    conn.execute(text("UPDATE ll_artifacts SET digest = 'sha256:' || digest"))
    conn.execute(text("UPDATE ll_store_info SET value = '2' WHERE key = 'schema_version'"))


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Autogenerate compares our tables only: the database may hold other applications'."""
    return type_ != "table" or name in metadata.tables


def differences(conn: Connection) -> list[Any]:
    """What autogenerate would change to make the database match the models ([] if nothing)."""
    context = MigrationContext.configure(
        conn,
        opts={
            "version_table": VERSION_TABLE,
            "include_name": include_name,
            "compare_type": True,
            "target_metadata": metadata,
        },
    )
    return list(compare_metadata(context, metadata))
