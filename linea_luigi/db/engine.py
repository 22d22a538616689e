"""Engines, transactions and database error translation.

Engines are cached per process id: a forked Luigi worker must never reuse a
connection its parent opened. On SQLite every connection runs in WAL mode with
a busy timeout, and write transactions start with ``BEGIN IMMEDIATE`` so the
write lock is taken up front instead of failing with "database is locked"
when a reader later tries to upgrade.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from ..errors import DatabaseError
from ..urls import mask_url

_WRITE_OPTION = "linea_luigi_write"
SQLITE_BUSY_TIMEOUT_S = 60.0
_LOCK_RETRIES = 5

T = TypeVar("T")

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def get_engine(url: URL) -> Engine:
    """The engine for ``url`` in this process (created on first use)."""
    key = (os.getpid(), url.render_as_string(hide_password=False))
    engine = _engines.get(key)
    if engine is None:
        with _engines_lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _create_engine(url)
                _engines[key] = engine
    return engine


def _create_engine(url: URL) -> Engine:
    try:
        if is_sqlite(url):
            return _create_sqlite_engine(url)
        return create_engine(url, pool_pre_ping=True, future=True)
    except (exc.NoSuchModuleError, ImportError) as err:
        raise DatabaseError(
            f"No SQLAlchemy driver for {mask_url(url)}: {err}. Install the driver "
            "(psycopg2-binary for postgresql://) or fix the URL's scheme."
        ) from err
    except exc.ArgumentError as err:
        raise DatabaseError(f"Invalid database URL {mask_url(url)}: {err}") from err


def _create_sqlite_engine(url: URL) -> Engine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": None},
        future=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # The driver's own transaction handling is off (isolation_level=None);
        # we emit BEGIN ourselves, IMMEDIATE for writers.
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _is_lock_error(err: exc.DBAPIError) -> bool:
    text = str(err.orig).lower()
    return "database is locked" in text or "database is busy" in text


def translate(err: exc.SQLAlchemyError, url: URL, doing: str) -> DatabaseError:
    """Turn a SQLAlchemy error into our ``DatabaseError`` without leaking the password."""
    orig = getattr(err, "orig", None)
    detail = str(orig if orig is not None else err).strip().splitlines()[0] if str(err) else ""
    if isinstance(err, exc.OperationalError):
        return DatabaseError(
            f"The artifact database {mask_url(url)} is unavailable while {doing}: {detail}. "
            "Check that the database is running and reachable and that the URL is right."
        )
    return DatabaseError(f"Database error on {mask_url(url)} while {doing}: {detail}")


def transact(url: URL, work: Callable[[Session], T], *, write: bool, doing: str) -> T:
    """Run ``work`` in one transaction: commit on success, roll back on error.

    ``work`` must touch nothing but the database, because a write that lost the
    SQLite lock race past the busy timeout is rolled back and run again.
    ``write=True`` takes the write lock at BEGIN on SQLite. SQLAlchemy errors
    leave as ``DatabaseError``; our own errors pass through unchanged.
    """
    engine = get_engine(url)
    attempt = 0
    while True:
        with Session(engine, expire_on_commit=False) as session:
            try:
                if write:
                    session.connection(execution_options={_WRITE_OPTION: True})
                result = work(session)
                session.commit()
                return result
            except exc.OperationalError as err:
                session.rollback()
                if is_sqlite(url) and _is_lock_error(err) and attempt < _LOCK_RETRIES:
                    attempt += 1
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise translate(err, url, doing) from err
            except exc.SQLAlchemyError as err:
                session.rollback()
                raise translate(err, url, doing) from err


def scalar(url: URL, statement: Executable, params: dict[str, Any], *, doing: str) -> Any:
    """Run one read-only statement on a pooled connection and return its first value.

    The hot path (``ArtifactTarget.exists()`` for every task Luigi schedules):
    no ORM session, no retry, errors translated like ``transact``.
    """
    try:
        with get_engine(url).connect() as conn:
            return conn.execute(statement, params).scalar()
    except exc.SQLAlchemyError as err:
        raise translate(err, url, doing) from err


def dispose_all() -> None:
    """Dispose every engine this process created (used by tests and shutdown)."""
    with _engines_lock:
        for (pid, _), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
        _engines.clear()
