"""Create the schema on first use and bind the database to one storage root."""

from __future__ import annotations

import threading

from sqlalchemy import select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from ..errors import StoreMismatchError
from ..urls import mask_url
from .engine import on_dispose, transact
from .schema import SCHEMA_VERSION, StoreInfoRow, metadata

STORAGE_ROOT_KEY = "storage_root"
SCHEMA_VERSION_KEY = "schema_version"
#: arbitrary constant: the advisory lock that serialises schema creation on PostgreSQL
_PG_SETUP_LOCK = 0x11EA_1061

_ready: set[tuple[str, str]] = set()
_ready_lock = threading.Lock()
on_dispose.append(_ready.clear)  # after dispose_all the next use checks the schema again


def ensure_ready(url: URL, storage_root: str) -> None:
    """Create missing tables and check the storage root, once per process and pair."""
    key = (url.render_as_string(hide_password=False), storage_root)
    if key in _ready:
        return
    with _ready_lock:
        if key not in _ready:
            transact(
                url,
                lambda s: _setup(s, url, storage_root),
                write=True,
                doing="preparing the artifact schema",
            )
            _ready.add(key)


def _setup(session: Session, url: URL, storage_root: str) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SETUP_LOCK})
    metadata.create_all(conn)
    info = {k: v for k, v in session.execute(select(StoreInfoRow.key, StoreInfoRow.value))}
    recorded_schema = int(info.get(SCHEMA_VERSION_KEY, SCHEMA_VERSION))
    if recorded_schema > SCHEMA_VERSION:
        raise StoreMismatchError(
            f"The database {mask_url(url)} has artifact schema version {recorded_schema}, newer "
            f"than this linea_luigi understands ({SCHEMA_VERSION}). Upgrade linea_luigi."
        )
    if STORAGE_ROOT_KEY in info and recorded_schema < SCHEMA_VERSION:
        _upgrade(session, recorded_schema)
    recorded_root = info.get(STORAGE_ROOT_KEY)
    if recorded_root is None:
        session.add(StoreInfoRow(key=STORAGE_ROOT_KEY, value=storage_root))
        session.add(StoreInfoRow(key=SCHEMA_VERSION_KEY, value=str(SCHEMA_VERSION)))
    elif recorded_root != storage_root:
        raise StoreMismatchError(
            f"The database {mask_url(url)} belongs to the artifact storage {recorded_root!r}, "
            f"but the configured artifact_storage_dir is {storage_root!r}. The database and the "
            "storage must change together: set artifact_storage_dir back to the recorded "
            "location, or point database_url at the database of the new location (or a new, "
            "empty one)."
        )


def _upgrade(session: Session, recorded: int) -> None:
    """Bring a database written by an older linea_luigi up to ``SCHEMA_VERSION``.

    Version 1 stored a bare sha256 hex in ``sha256``; version 2 stores an
    algorithm-prefixed ``digest``. Existing values keep verifying as sha256.
    """
    conn = session.connection()
    if recorded < 2:
        conn.execute(text("ALTER TABLE ll_artifacts RENAME COLUMN sha256 TO digest"))
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE ll_artifacts ALTER COLUMN digest TYPE VARCHAR(80)"))
        conn.execute(text("UPDATE ll_artifacts SET digest = 'sha256:' || digest"))
    session.execute(
        update(StoreInfoRow)
        .where(StoreInfoRow.key == SCHEMA_VERSION_KEY)
        .values(value=str(SCHEMA_VERSION))
    )
