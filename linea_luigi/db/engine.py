"""Engines, transactions and database error translation.

Engines are cached per process id: a forked Luigi worker must never reuse a
connection its parent opened. On SQLite every connection runs in WAL mode, and
write transactions start with ``BEGIN IMMEDIATE`` so the write lock is taken up
front instead of failing with "database is locked" when a reader later tries to
upgrade.

Waiting for another process's lock is bounded by one number, the engine's
``lock_timeout`` (``[artifact_store] lock_timeout``, 60 s by default): on
SQLite a short busy timeout per attempt (``LOCK_SLICE_S``) and retries until
the total is spent, with one log line once the wait is noticeable; on
PostgreSQL the session's own ``lock_timeout``. Either way the end is a
``DatabaseLockedError`` that says the database is locked and for how long it
was waited on, never "unavailable".
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Row, create_engine, event, exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from ..errors import ConfigError, DatabaseError, DatabaseLockedError
from ..settings.settings import DEFAULT_LOCK_TIMEOUT_S
from ..settings.urls import mask_url

log = logging.getLogger(__name__)

_WRITE_OPTION = "linea_luigi_write"
#: a single read statement needs no BEGIN on SQLite: it is its own transaction
_SINGLE_OPTION = "linea_luigi_single_statement"
#: longest single busy wait on SQLite: the retry loop checks the total and logs between slices
LOCK_SLICE_S = 1.0
#: after this long waiting for a lock, say so once in the log
LOCK_NOTICE_AFTER_S = 5.0
#: PostgreSQL's "lock_not_available": a statement gave up waiting after lock_timeout
_PG_LOCK_TIMEOUT = "55P03"

T = TypeVar("T")

_engines: dict[tuple[int, str, float], Engine] = {}
_engines_lock = threading.Lock()
#: the lock timeout each engine was made with (engines are per process, url and timeout)
_lock_timeouts: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def get_engine(url: URL, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S) -> Engine:
    """The engine for ``url`` in this process (created on first use).

    ``lock_timeout``: seconds a statement may wait for another process's lock.
    """
    key = (os.getpid(), url.render_as_string(hide_password=False), lock_timeout)
    engine = _engines.get(key)
    if engine is None:
        with _engines_lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _create_engine(url, lock_timeout)
                _lock_timeouts[engine] = lock_timeout
                _engines[key] = engine
    return engine


def lock_timeout_of(engine: Engine) -> float:
    """The lock timeout ``engine`` was made with (the default for engines made elsewhere)."""
    return _lock_timeouts.get(engine, DEFAULT_LOCK_TIMEOUT_S)


def _create_engine(url: URL, lock_timeout: float) -> Engine:
    try:
        if is_sqlite(url):
            return _create_sqlite_engine(url, lock_timeout)
        engine = create_engine(url, pool_pre_ping=True, future=True)
        if url.get_backend_name() == "postgresql":
            _bound_pg_lock_waits(engine, lock_timeout)
        return engine
    except (exc.NoSuchModuleError, ImportError) as err:
        raise DatabaseError(
            f"No SQLAlchemy driver for {mask_url(url)}: {err}. Install the driver "
            "(psycopg2-binary for postgresql://) or fix the URL's scheme."
        ) from err
    except exc.ArgumentError as err:
        raise DatabaseError(f"Invalid database URL {mask_url(url)}: {err}") from err


def _bound_pg_lock_waits(engine: Engine, lock_timeout: float) -> None:
    """Every session of ``engine`` gives up waiting for a lock after ``lock_timeout``."""
    setting = f"SET lock_timeout = {max(1, math.ceil(lock_timeout * 1000))}"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(setting)
        finally:
            cur.close()
        dbapi_conn.commit()  # a session setting, kept after this (otherwise empty) transaction


def _create_sqlite_engine(url: URL, lock_timeout: float) -> Engine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        _make_parent_folder(url)
    busy = min(LOCK_SLICE_S, lock_timeout)
    engine = create_engine(
        url,
        connect_args={"timeout": busy, "isolation_level": None},
        future=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {max(1, int(busy * 1000))}")
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


def _make_parent_folder(url: URL) -> None:
    """Create the SQLite file's folder; a path that cannot hold one is a ``ConfigError``."""
    path = Path(str(url.database)).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # FileExistsError / NotADirectoryError: a file on the way
        reason = (
            "a part of that path is a file, not a folder"
            if isinstance(err, (FileExistsError, NotADirectoryError))
            else (err.strerror or str(err))
        )
        raise ConfigError(
            f"Cannot create the folder of the SQLite database {path}: {reason}. "
            "Point db_connection at a path in a folder that exists or can be created."
        ) from None


def is_lock_error(err: BaseException) -> bool:
    """Whether ``err`` (SQLAlchemy's or the driver's own) is SQLite's "database is locked"."""
    text = str(getattr(err, "orig", None) or err).lower()
    return "database is locked" in text or "database is busy" in text


def translate(
    err: BaseException,
    url: URL,
    doing: str,
    *,
    operational: bool | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S,
) -> DatabaseError:
    """Turn a SQLAlchemy or driver error into our ``DatabaseError``, password masked.

    ``operational`` says whether the database was unreachable or unavailable;
    by default a SQLAlchemy ``OperationalError`` is. PostgreSQL's lock timeout
    becomes ``DatabaseLockedError`` (``lock_timeout``: what the session waited).
    """
    orig = getattr(err, "orig", None)
    if getattr(orig if orig is not None else err, "pgcode", None) == _PG_LOCK_TIMEOUT:
        return locked_error(url, doing, lock_timeout, lock_timeout, err)
    text = str(orig if orig is not None else err).strip()
    detail = mask_url(text.splitlines()[0]) if text else type(err).__name__
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


def locked_error(
    url: URL, doing: str, waited: float, lock_timeout: float, err: BaseException
) -> DatabaseLockedError:
    """The error of a statement that gave up waiting for another process's lock."""
    return DatabaseLockedError(
        f"The artifact database {mask_url(url)} is locked by another process: gave up "
        f"{doing} after waiting {waited:.1f} s for its lock ([artifact_store] lock_timeout is "
        f"{lock_timeout:g} s). Let the other process finish (a long transaction, an open "
        "database shell, a stuck job), or raise lock_timeout.",
        driver_error=err,
    )


class LockWait:
    """One statement's wait for another process's SQLite lock, across its retries.

    Each attempt waits at most ``LOCK_SLICE_S`` in SQLite's busy handler; between
    attempts ``again`` checks the total against the engine's lock timeout and
    says once, after ``LOCK_NOTICE_AFTER_S``, who is being waited for.
    """

    def __init__(self, url: URL, engine: Engine, doing: str, started: float) -> None:
        self.url = url
        self.doing = doing
        self.started = started
        self.timeout = lock_timeout_of(engine)
        self.noticed = False

    def again(self, err: BaseException) -> None:
        """Return when another attempt may run; raise ``DatabaseLockedError`` when out of time."""
        waited = time.monotonic() - self.started
        if waited >= self.timeout:
            raise locked_error(self.url, self.doing, waited, self.timeout, err) from None
        if not self.noticed and waited >= LOCK_NOTICE_AFTER_S:
            self.noticed = True
            log.warning(
                "%s: waiting for another process's write lock on %s (%.0f s so far; "
                "gives up after lock_timeout = %g s)",
                self.doing,
                self.url.database,
                waited,
                self.timeout,
            )
        time.sleep(min(0.01, max(0.0, self.timeout - waited)))


def transaction(
    url: URL,
    work: Callable[[Connection], T],
    *,
    write: bool,
    doing: str,
    engine: Engine | None = None,
) -> T:
    """Run ``work`` in one Core transaction: commit on success, roll back on error.

    ``work`` must touch nothing but the database, because an attempt that met
    another process's SQLite lock is rolled back and run again (until the lock
    timeout). ``write=True`` takes the write lock at BEGIN on SQLite.
    SQLAlchemy errors leave as ``DatabaseError``; our own errors pass through
    unchanged. No ORM unit of work, prebuilt statements only.
    """
    engine = engine or get_engine(url)

    def attempt() -> T:
        with engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                return work(conn)

    return _retrying(url, engine, attempt, doing)


def transact(url: URL, work: Callable[[Session], T], *, write: bool, doing: str) -> T:
    """Like ``transaction``, with an ORM ``Session`` for code that maps rows to objects."""
    engine = get_engine(url)

    def attempt() -> T:
        with Session(engine, expire_on_commit=False) as session:
            if write:
                session.connection(execution_options={_WRITE_OPTION: True})
            result = work(session)
            session.commit()
            return result

    return _retrying(url, engine, attempt, doing)


def _retrying(url: URL, engine: Engine, attempt: Callable[[], T], doing: str) -> T:
    """Run ``attempt``, again while SQLite's lock is held elsewhere; translate database errors."""
    started = time.monotonic()
    wait: LockWait | None = None
    while True:
        try:
            return attempt()
        except exc.OperationalError as err:
            if is_sqlite(url) and is_lock_error(err):
                wait = wait or LockWait(url, engine, doing, started)
                wait.again(err)
                continue
            raise translate(err, url, doing, lock_timeout=lock_timeout_of(engine)) from None
        except exc.SQLAlchemyError as err:
            raise translate(err, url, doing, lock_timeout=lock_timeout_of(engine)) from None


def first(
    url: URL,
    statement: Executable,
    params: dict[str, Any],
    *,
    doing: str,
    engine: Engine | None = None,
) -> Row[Any] | None:
    """Run one read-only statement on a pooled connection and return its first row.

    No ORM session; errors translated, and lock waits bounded, like ``transaction``.
    """
    engine = engine or get_engine(url)

    def attempt() -> Row[Any] | None:
        with engine.connect() as conn:
            conn.execution_options(**{_SINGLE_OPTION: True})
            return conn.execute(statement, params).first()

    return _retrying(url, engine, attempt, doing)


#: called by ``dispose_all`` to release connections held outside the pools
on_dispose: list[Callable[[], None]] = []


def dispose_all() -> None:
    """Dispose every engine this process created (used by tests and shutdown)."""
    for release in on_dispose:
        release()
    with _engines_lock:
        for (pid, _, _), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
        _engines.clear()
