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

from sqlalchemy import Row, create_engine, event, exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from ..errors import DatabaseError
from ..urls import mask_url

_WRITE_OPTION = "linea_luigi_write"
#: a single read statement needs no BEGIN on SQLite: it is its own transaction
_SINGLE_OPTION = "linea_luigi_single_statement"
SQLITE_BUSY_TIMEOUT_S = 60.0
LOCK_RETRIES = 5

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
        opts = conn.get_execution_options()
        if opts.get(_SINGLE_OPTION, False):
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if opts.get(_WRITE_OPTION, False) else "BEGIN")

    return engine


def is_lock_error(err: BaseException) -> bool:
    """Whether ``err`` (SQLAlchemy's or the driver's own) is SQLite's "database is locked"."""
    text = str(getattr(err, "orig", None) or err).lower()
    return "database is locked" in text or "database is busy" in text


def translate(
    err: BaseException, url: URL, doing: str, *, operational: bool | None = None
) -> DatabaseError:
    """Turn a SQLAlchemy or driver error into our ``DatabaseError``, password masked.

    ``operational`` says whether the database was unreachable or unavailable;
    by default a SQLAlchemy ``OperationalError`` is.
    """
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    detail = text.splitlines()[0] if text else type(err).__name__
    if operational is None:
        operational = isinstance(err, exc.OperationalError)
    if operational:
        return DatabaseError(
            f"The artifact database {mask_url(url)} is unavailable while {doing}: {detail}. "
            "Check that the database is running and reachable and that the URL is right.",
            driver_error=err,
        )
    return DatabaseError(
        f"Database error on {mask_url(url)} while {doing}: {detail}", driver_error=err
    )


def run(
    url: URL,
    work: Callable[[Connection], T],
    *,
    write: bool,
    doing: str,
    engine: Engine | None = None,
) -> T:
    """Run ``work`` in one Core transaction: commit on success, roll back on error.

    ``work`` must touch nothing but the database, because a write that lost the
    SQLite lock race past the busy timeout is rolled back and run again.
    ``write=True`` takes the write lock at BEGIN on SQLite. SQLAlchemy errors
    leave as ``DatabaseError``; our own errors pass through unchanged. This is
    the hot path of saving: no ORM unit of work, prebuilt statements only.
    """
    engine = engine or get_engine(url)

    def attempt() -> T:
        with engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                return work(conn)

    return _retrying(url, attempt, doing)


def transact(url: URL, work: Callable[[Session], T], *, write: bool, doing: str) -> T:
    """Like ``run``, with an ORM ``Session`` for code that maps rows to objects."""
    engine = get_engine(url)

    def attempt() -> T:
        with Session(engine, expire_on_commit=False) as session:
            if write:
                session.connection(execution_options={_WRITE_OPTION: True})
            result = work(session)
            session.commit()
            return result

    return _retrying(url, attempt, doing)


def _retrying(url: URL, attempt: Callable[[], T], doing: str) -> T:
    """Run ``attempt``, again after SQLite lock time-outs; translate database errors."""
    tries = 0
    while True:
        try:
            return attempt()
        except exc.OperationalError as err:
            if is_sqlite(url) and is_lock_error(err) and tries < LOCK_RETRIES:
                tries += 1
                lock_backoff(tries)
                continue
            raise translate(err, url, doing) from None
        except exc.SQLAlchemyError as err:
            raise translate(err, url, doing) from None


def first(
    url: URL,
    statement: Executable,
    params: dict[str, Any],
    *,
    doing: str,
    engine: Engine | None = None,
) -> Row[Any] | None:
    """Run one read-only statement on a pooled connection and return its first row.

    The hot path (``ArtifactTarget.exists()`` for every task Luigi schedules):
    no ORM session, no retry, errors translated like ``run``.
    """
    try:
        with (engine or get_engine(url)).connect() as conn:
            conn.execution_options(**{_SINGLE_OPTION: True})
            return conn.execute(statement, params).first()
    except exc.SQLAlchemyError as err:
        raise translate(err, url, doing) from None


def lock_backoff(tries: int) -> None:
    """Wait before retry ``tries`` of a write that timed out on SQLite's lock."""
    time.sleep(0.05 * 2**tries)


#: called by ``dispose_all`` to release connections held outside the pools
on_dispose: list[Callable[[], None]] = []


def dispose_all() -> None:
    """Dispose every engine this process created (used by tests and shutdown)."""
    for release in on_dispose:
        release()
    with _engines_lock:
        for (pid, _), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
        _engines.clear()
