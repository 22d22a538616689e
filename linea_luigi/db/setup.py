"""Bring the schema to the current revision under a lock, then bind the storage root.

Alembic's revisions (``db.migrations``) are the source of schema truth: first
use of a database in a process upgrades it, or adopts one that ``create_all``
made before migrations existed. An empty database skips Alembic (~150 ms):
``migrations.fresh`` creates the head schema from the models and stamps it, a
result the tests prove equal to the revisions'. Several processes may start
at once, so the work runs in one write transaction holding a lock:
PostgreSQL's transaction advisory lock (DDL is transactional there) or SQLite's
write lock, taken at ``BEGIN IMMEDIATE`` (SQLite DDL is transactional too).
Whoever waited re-reads the revision under the lock and finds nothing to do.

The common case, a current database bound to this storage root, costs one
SELECT and never imports Alembic; neither does creating an empty database,
binding a root to a current one, or waiting while another process does either.

``ll_store_info`` keeps the storage root the database belongs to and
``schema_version = '2'``: not read by this code, kept for the releases before
migrations, which refuse a database whose ``schema_version`` is newer than
theirs (a revision they would misread sets it to ``'3'``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, insert, select, text, update
from sqlalchemy.engine import URL, Engine

from ..errors import DatabaseError, SchemaTooNewError, StoreMismatchError
from ..settings.urls import mask_url
from .engine import first, on_dispose, transaction
from .migrations import HEAD, VERSION_TABLE, fresh
from .schema import ARTIFACTS, StoreInfoRow

log = logging.getLogger(__name__)

STORAGE_ROOT_KEY = "storage_root"
SCHEMA_VERSION_KEY = "schema_version"
#: what the releases before migrations compare with their own schema version (see above)
LEGACY_SCHEMA_VERSION = "2"
#: arbitrary constant: the advisory lock that serialises migrations on PostgreSQL
#: (the releases before migrations took the same one around ``create_all``)
PG_MIGRATION_LOCK = 0x11EA_1061

_INFO = cast(Table, StoreInfoRow.__table__)
_ARTIFACT_ID = ARTIFACTS.c.id
#: the fast path: revision and storage root in one statement (fails if either table is missing)
_STATE = text(
    f"SELECT (SELECT version_num FROM {VERSION_TABLE}) AS revision, "
    "(SELECT value FROM ll_store_info WHERE key = :root_key) AS root"
)

_ready: set[tuple[str, str]] = set()
_schema_ready: set[str] = set()
_ready_lock = threading.Lock()
on_dispose.append(_ready.clear)  # after dispose_all the next use checks again
on_dispose.append(_schema_ready.clear)


@dataclass(frozen=True)
class Migration:
    """What ``migrate`` found and left: revisions before (None: no schema) and after."""

    before: str | None
    after: str
    #: the database was made by ``create_all`` before migrations, and was stamped
    adopted: bool = False


def ensure_ready(url: URL, storage_root: str, engine: Engine | None = None) -> None:
    """Migrate the schema and check the storage root, once per process and pair.

    ``engine``: the caller's (its lock timeout bounds the wait for a concurrent migration).

    Raises ``StoreMismatchError`` for a database bound to another root,
    ``SchemaTooNewError`` for one a newer linea_luigi migrated, ``DatabaseError``.
    """
    key = (url.render_as_string(hide_password=False), storage_root)
    if key in _ready:
        return
    with _ready_lock:
        if key in _ready:
            return
        state = _state(url, engine)
        if state != (HEAD, storage_root):
            _preload_alembic(state)
            transaction(
                url,
                lambda conn: _prepare(conn, url, storage_root),
                write=True,
                doing="preparing the artifact schema",
                engine=engine,
            )
        _ready.add(key)
        _schema_ready.add(key[0])


def ensure_schema(url: URL, *, doing: str = "migrating the artifact schema") -> None:
    """Migrate the schema once per process and database, binding no storage root.

    For Luigi's task history, which may live in a database no store uses;
    ``doing`` names the work in error messages.
    """
    key = url.render_as_string(hide_password=False)
    if key in _schema_ready:
        return
    with _ready_lock:
        if key in _schema_ready:
            return
        state = _state(url)
        if state is None or state[0] != HEAD:
            _preload_alembic(state)
            migrate(url, doing=doing)
        _schema_ready.add(key)


def migrate(url: URL, *, doing: str = "migrating the artifact schema") -> Migration:
    """Create, adopt or upgrade the schema of ``url`` to ``HEAD``, under the lock.

    ``python -m linea_luigi migrate`` runs this; no storage root is bound.
    """
    return transaction(url, lambda conn: _migrate(conn, url), write=True, doing=doing)


@dataclass(frozen=True)
class Status:
    """What a database says about itself, read without changing anything (``doctor``)."""

    #: Alembic revision, or None when the schema was never created
    revision: str | None
    #: the storage root it is bound to, or None when none is yet
    storage_root: str | None
    has_artifacts: bool


def status(url: URL) -> Status:
    """Read the revision, the bound root and whether artifacts exist; change nothing.

    Raises ``DatabaseError`` when the database cannot be reached.
    """
    first(url, text("SELECT 1"), {}, doing="connecting")  # unreachable: raises
    state = _state(url)
    if state is None:
        return Status(None, None, False)
    row = first(url, select(_ARTIFACT_ID).limit(1), {}, doing="counting artifacts")
    return Status(state[0], state[1], row is not None)


def _preload_alembic(state: tuple[str | None, str | None] | None) -> None:
    """Import Alembic (~150 ms) before the lock, not while others wait, if it will be needed.

    A database at another revision will need it; one without our tables is
    most likely empty (``fresh``), and one at ``HEAD`` needs only its root bound.
    """
    if state is not None and state[0] != HEAD:
        from .migrations import runner as runner


def _state(url: URL, engine: Engine | None = None) -> tuple[str | None, str | None] | None:
    """(revision, storage root) in one SELECT, or None when a table is missing."""
    try:
        row = first(
            url, _STATE, {"root_key": STORAGE_ROOT_KEY}, doing="checking the schema", engine=engine
        )
    except DatabaseError:
        return None  # missing tables, or an unreachable database: the slow path will say
    return None if row is None else (row.revision, row.root)


def _prepare(conn: Connection, url: URL, storage_root: str) -> None:
    _migrate(conn, url)
    _bind_root(conn, url, storage_root)


def _migrate(conn: Connection, url: URL) -> Migration:
    """Under the lock: create an empty schema, or (Alembic) refuse, adopt or upgrade to HEAD."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
    found = fresh.found(conn)
    if found is fresh.Found.EMPTY:
        fresh.create(conn)
        return Migration(before=None, after=HEAD)
    if found is fresh.Found.CURRENT:  # e.g. made by whoever held the lock while we waited
        return Migration(before=HEAD, after=HEAD)
    from .migrations import runner  # here only: most processes never need Alembic

    heads = runner.current(conn)
    newer = runner.unknown(heads)
    if newer:
        raise SchemaTooNewError(
            f"The database {mask_url(url)} is at schema revision {', '.join(newer)}, which this "
            f"linea_luigi does not know (it knows up to {HEAD}): a newer linea_luigi migrated "
            "it. Upgrade linea_luigi (pip install -U linea-luigi) in every process that uses "
            "this database; it was left unchanged."
        )
    before = heads[0] if len(heads) == 1 else None
    adopted = not heads and runner.adopt(conn)
    if heads != (HEAD,):
        runner.upgrade(conn)
    return Migration(before=before, after=HEAD, adopted=adopted)


def _bind_root(conn: Connection, url: URL, storage_root: str) -> None:
    """Record the storage root on first use; refuse a database bound to another one.

    While the database holds no artifact it is re-bound instead, so a first
    run that failed before saving anything does not pin a wrong root forever.
    """
    c = _INFO.c
    info: dict[str, str] = {k: v for k, v in conn.execute(select(c.key, c.value))}
    recorded_root = info.get(STORAGE_ROOT_KEY)
    if recorded_root is None:
        conn.execute(insert(_INFO).values(key=STORAGE_ROOT_KEY, value=storage_root))
        if SCHEMA_VERSION_KEY not in info:
            conn.execute(insert(_INFO).values(key=SCHEMA_VERSION_KEY, value=LEGACY_SCHEMA_VERSION))
    elif recorded_root != storage_root:
        if conn.execute(select(_ARTIFACT_ID).limit(1)).first() is None:
            # nothing was ever published there (e.g. a first run failed on an unwritable
            # folder): nothing can be lost, so the database follows the configuration
            conn.execute(update(_INFO).where(c.key == STORAGE_ROOT_KEY).values(value=storage_root))
            log.info("rebound the empty database %s to %s", mask_url(url), mask_url(storage_root))
            return
        raise StoreMismatchError(
            f"The database {mask_url(url)} belongs to the artifact storage "
            f"{mask_url(recorded_root)!r}, but the configured artifact_storage_dir is "
            f"{mask_url(storage_root)!r}. The database and the storage must change together: "
            "set artifact_storage_dir back to the recorded location, or point database_url at "
            "the database of the new location (or a new, empty one)."
        )
