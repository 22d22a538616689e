"""The hot path: prebuilt Core statements on one held DBAPI connection per thread.

Luigi asks every task ``complete()`` and a pipeline saves and reads one record
per task. Through a pooled SQLAlchemy ``Connection`` each of those statements
costs 20-50 µs of Python (checkout, events, BEGIN, reset) before the database
sees it, several times the indexed query itself. Here the same Core statements
are compiled once per dialect and run straight on a DBAPI cursor, with
SQLAlchemy's own bind and result processors for the typed columns, on a
connection kept per thread and process in autocommit mode: a lone read is its
own transaction, a write is an explicit ``BEGIN IMMEDIATE`` (SQLite) or
``BEGIN`` (PostgreSQL, in the round trip of the first statement) … ``COMMIT``.

Only SQLite and PostgreSQL (psycopg2) take this path; other databases run the
same work through ``engine.run`` on a SQLAlchemy ``Connection``, behind the
same small ``Executor`` interface. A connection that fails is closed and
replaced on the next call, so a restarted database is picked up again.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.expression import Executable

from ..errors import CommitOutcomeUnknownError, DatabaseError
from . import engine as _engine
from .engine import LockWait, is_lock_error, lock_timeout_of, on_dispose, translate

T = TypeVar("T")

_BEGIN = {"sqlite": "BEGIN IMMEDIATE", "postgresql": "BEGIN"}


class Executor(Protocol):
    """What hot-path work may do inside one transaction."""

    def first(self, statement: Executable, params: Mapping[str, Any]) -> Any: ...

    def scalar(self, statement: Executable, params: Mapping[str, Any]) -> Any: ...

    def execute(self, statement: Executable, params: Mapping[str, Any]) -> None: ...

    def many(self, statement: Executable, rows: Iterable[Mapping[str, Any]]) -> None: ...


def supports(engine: Engine) -> bool:
    """Whether ``engine``'s database can use the DBAPI fast path."""
    return engine.dialect.name in _BEGIN and engine.dialect.paramstyle in ("qmark", "pyformat")


class _Prepared:
    """One statement compiled for one dialect, with its parameter and row handling."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        if not isinstance(statement, ClauseElement):
            raise TypeError(f"cannot compile {statement!r}")
        compiled: Any = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        defaults: dict[str, Any] = {}
        processors: dict[str, Callable[[Any], Any] | None] = {}
        for bind, key in compiled.bind_names.items():
            if bind.expanding:
                raise TypeError("expanding parameters are not supported on the fast path")
            defaults[key] = bind.value
            processors[key] = bind.type.dialect_impl(dialect).bind_processor(dialect)
        #: (name, default, processor or None), in the order the driver takes them
        names = compiled.positiontup if compiled.positiontup is not None else list(defaults)
        self._plan = [(k, defaults[k], processors[k]) for k in names]
        self._positional = compiled.positiontup is not None
        self.row: Any = None
        self._columns: list[tuple[int, Callable[[Any], Any]]] = []
        if isinstance(statement, Select):
            cols = list(statement.selected_columns)
            names = [str(c.key) for c in cols]
            self.row = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
            for i, c in enumerate(cols):
                process = c.type.dialect_impl(dialect).result_processor(dialect, None)
                if process is not None:
                    self._columns.append((i, process))

    def params(self, given: Mapping[str, Any]) -> Any:
        get = given.get
        if self._positional:
            return [get(k, d) if p is None else p(get(k, d)) for k, d, p in self._plan]
        return {k: get(k, d) if p is None else p(get(k, d)) for k, d, p in self._plan}

    def shape(self, raw: tuple[Any, ...]) -> Any:
        if self.row is None:
            return raw
        if not self._columns:
            return self.row._make(raw)
        values = list(raw)
        for i, process in self._columns:
            values[i] = process(values[i])
        return self.row._make(values)


@functools.cache
def _prepared(statement: Executable, dialect: Dialect) -> _Prepared:
    return _Prepared(statement, dialect)


class Tx:
    """``Executor`` on a DBAPI cursor: one fast transaction, or lone reads.

    ``begin``: a BEGIN to send in front of the first statement, in the same
    round trip (PostgreSQL's simple query protocol runs both; the result is
    the statement's). ``began``: it may have reached the server (so a failure
    must roll back); ``confirmed``: the server answered it.
    """

    def __init__(self, cursor: Any, dialect: Dialect, begin: str | None = None) -> None:
        self._cursor = cursor
        self._dialect = dialect
        self._begin = begin
        self.began = self.confirmed = False

    def _send(self, sql: str, params: Any) -> None:
        if self._begin is None or self.began:
            self._cursor.execute(sql, params)
            return
        self.began = True
        self._cursor.execute(f"{self._begin}; {sql}", params)
        self.confirmed = True

    def first(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """The first row (attributes named like the selected columns), or None."""
        prepared = _prepared(statement, self._dialect)
        self._send(prepared.sql, prepared.params(params))
        raw = self._cursor.fetchone()
        return None if raw is None else prepared.shape(raw)

    def scalar(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None."""
        row = self.first(statement, params)
        return None if row is None else row[0]

    def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        prepared = _prepared(statement, self._dialect)
        self._send(prepared.sql, prepared.params(params))

    def many(self, statement: Executable, rows: Iterable[Mapping[str, Any]]) -> None:
        prepared = _prepared(statement, self._dialect)
        if self._begin is not None and not self.began:  # executemany takes one statement
            self.began = True
            self._cursor.execute(self._begin)
            self.confirmed = True
        self._cursor.executemany(prepared.sql, [prepared.params(r) for r in rows])


class _ConnectionExecutor:
    """``Executor`` over a SQLAlchemy ``Connection``, for databases without a fast path."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def first(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        return self._conn.execute(statement, dict(params)).first()

    def scalar(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        return self._conn.execute(statement, dict(params)).scalar()

    def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        self._conn.execute(statement, dict(params))

    def many(self, statement: Executable, rows: Iterable[Mapping[str, Any]]) -> None:
        self._conn.execute(statement, [dict(r) for r in rows])


class _Held(threading.local):
    pid = -1
    connections: dict[Engine, Any]  # engines are per process and database


_held = _Held()
#: every held connection: (pid, its thread, connection), to close them on dispose and
#: to close those of threads that ended (a thread's connection is otherwise kept alive)
_all_held: list[tuple[int, weakref.ref[threading.Thread], Any]] = []
_all_lock = threading.Lock()


def held_connection(engine: Engine) -> Any:
    """This thread's held DBAPI connection to ``engine``'s database (e.g. to trace it)."""
    return _connection(engine)


def _connection(engine: Engine) -> Any:
    """This thread's DBAPI connection to ``engine``'s database, made on first use."""
    if _held.pid != os.getpid():  # a forked child must never share its parent's socket
        _held.pid = os.getpid()
        _held.connections = {}
    conn: Any = _held.connections.get(engine)
    if conn is None:
        proxy = engine.raw_connection()  # runs the engine's connect events (SQLite pragmas)
        conn = proxy.driver_connection
        proxy.detach()  # ours now: never returned to the pool in autocommit mode
        if engine.dialect.name == "postgresql":
            conn.autocommit = True
        _held.connections[engine] = conn
        _register(conn)
    return conn


def _register(conn: Any) -> None:
    """Remember ``conn``; close the connections of threads that have ended."""
    pid = os.getpid()
    with _all_lock:
        ended = [e for e in _all_held if e[0] == pid and not _alive(e[1])]
        _all_held[:] = [e for e in _all_held if e not in ended]
        _all_held.append((pid, weakref.ref(threading.current_thread()), conn))
    for _, _, old in ended:
        _close_connection(old)


def _alive(thread: weakref.ref[threading.Thread]) -> bool:
    found = thread()
    return found is not None and found.is_alive()


def _drop(engine: Engine, conn: Any) -> None:
    _held.connections.pop(engine, None)
    with _all_lock:
        _all_held[:] = [e for e in _all_held if e[2] is not conn]
    _close_connection(conn)


def _close_connection(conn: Any) -> None:
    with contextlib.suppress(Exception):  # already broken; closing is only tidying up
        conn.close()


def release_all() -> None:
    """Close every connection this process holds (``dispose_all`` calls this)."""
    pid = os.getpid()
    with _all_lock:
        mine = [e[2] for e in _all_held if e[0] == pid]
        _all_held[:] = [e for e in _all_held if e[0] != pid]
    _held.connections = {}
    for conn in mine:
        _close_connection(conn)


on_dispose.append(release_all)


def run(
    url: URL,
    engine: Engine,
    work: Callable[[Executor], T],
    *,
    write: bool,
    doing: str,
    single: bool = False,
) -> T:
    """Run ``work`` as one write transaction, or as lone autocommit reads.

    ``single``: the write is one statement, which is its own transaction (no
    BEGIN and COMMIT around it: on SQLite a write statement takes the write
    lock as it starts, as ``BEGIN IMMEDIATE`` would); for the task lock's
    per-task statements, where those two round trips are half the cost.

    Errors leave as ``DatabaseError`` (password masked), connection failures
    included; ``CommitOutcomeUnknownError`` when the connection was lost during
    COMMIT. Work that met another process's SQLite lock is retried until the
    engine's lock timeout (``engine.LockWait``), then ``DatabaseLockedError``.
    ``work`` must touch nothing but the database.
    """
    facts = _facts.get(engine)
    if facts is None:
        facts = _facts[engine] = _Facts(engine)
    if not facts.supported:
        return _engine.transaction(
            url, lambda c: work(_ConnectionExecutor(c)), write=write, doing=doing, engine=engine
        )
    started = time.monotonic()
    wait: LockWait | None = None
    reconnected = False
    while True:
        attempt = _Attempt()
        try:
            return attempt.execute(engine, facts, work, write, single)
        except BaseException as err:
            began = attempt.abandon()
            if isinstance(err, exc.SQLAlchemyError):  # from the pool or a connect event
                raise translate(err, url, doing) from None
            if not isinstance(err, facts.dbapi_error):
                raise
            lost = attempt.lost(engine, err)
            if lost:
                _drop(engine, attempt.conn)
                # a connection that died while idle (a restarted server): once more on a
                # new one, unless a write had begun (its outcome would be unknown), a
                # single-statement write included
                if not began and not attempt.committing and not reconnected:
                    reconnected = True
                    continue
            if facts.sqlite and is_lock_error(err):
                wait = wait or LockWait(url, engine, doing, started)
                wait.again(err)
                continue
            cut_off = attempt.committing and lost
            raise _failure(err, url, engine, doing, cut_off=cut_off) from None
        finally:
            attempt.close()


class _Attempt:
    """One try of ``run``'s work on this thread's held connection, and what it got to."""

    __slots__ = ("began", "committing", "conn", "cursor", "tx")

    def __init__(self) -> None:
        self.conn: Any = None
        self.cursor: Any = None
        self.tx: Tx | None = None
        #: BEGIN was sent on its own (SQLite); a joined BEGIN is tracked by ``tx``
        self.began = False
        #: COMMIT was sent: a connection lost now leaves the outcome unknown
        self.committing = False

    def execute(
        self,
        engine: Engine,
        facts: _Facts,
        work: Callable[[Executor], T],
        write: bool,
        single: bool = False,
    ) -> T:
        self.conn = conn = _connection(engine)  # (re)connecting fails like any statement
        self.cursor = cursor = conn.cursor()
        if single and write:  # the statement commits itself: a lost connection leaves it unknown
            self.committing, write = True, False
        if write and not facts.joined_begin:
            cursor.execute(facts.begin)
            self.began = True
        joined = facts.begin if write and facts.joined_begin else None
        tx = self.tx = Tx(cursor, engine.dialect, joined)
        result = work(tx)
        if self.began or tx.began:
            self.committing = True
            cursor.execute("COMMIT")
        return result

    def abandon(self) -> bool:
        """Roll back whatever may have begun; whether the server confirmed a BEGIN.

        A joined BEGIN that got no answer counts as not begun for a retry (no
        COMMIT was sent, so the server kept nothing), but is rolled back.
        """
        tx = self.tx
        if self.began or (tx is not None and tx.began):
            _rollback(self.cursor)
        return self.began or (tx is not None and tx.confirmed)

    def lost(self, engine: Engine, err: Any) -> bool:
        """Whether ``err`` means the connection is gone (it must then be replaced)."""
        conn = self.conn
        if conn is None:
            return False
        return bool(engine.dialect.is_disconnect(err, conn, self.cursor)) or bool(
            getattr(conn, "closed", False)
        )

    def close(self) -> None:
        if self.cursor is not None:
            _close(self.cursor)


def _failure(
    err: BaseException, url: URL, engine: Engine, doing: str, *, cut_off: bool
) -> DatabaseError:
    """The error ``run`` raises for a driver error it does not retry."""
    operational = isinstance(err, engine.dialect.loaded_dbapi.OperationalError)
    error = translate(
        err, url, doing, operational=operational, lock_timeout=lock_timeout_of(engine)
    )
    if not cut_off:
        return error
    return CommitOutcomeUnknownError(
        f"{error} The connection was lost during COMMIT, so the write may or may "
        "not have been saved.",
        driver_error=err,
    )


class _Facts:
    """What ``run`` needs to know about an engine, looked up once."""

    def __init__(self, engine: Engine) -> None:
        self.supported = supports(engine)
        self.sqlite = engine.dialect.name == "sqlite"
        self.begin = _BEGIN.get(engine.dialect.name, "BEGIN")
        #: BEGIN travels with the first statement (one round trip less per write); the
        #: sqlite3 module runs one statement per call, and SQLite's BEGIN costs no trip
        self.joined_begin = engine.dialect.name == "postgresql"
        dbapi = engine.dialect.loaded_dbapi if self.supported else None
        self.dbapi_error: Any = dbapi.Error if dbapi is not None else Exception


#: per engine (engines live per process and database; weak keys follow ``dispose_all``)
_facts: weakref.WeakKeyDictionary[Engine, _Facts] = weakref.WeakKeyDictionary()


def _close(cursor: Any) -> None:
    # try/except rather than contextlib.suppress: this runs after every statement
    try:  # noqa: SIM105
        cursor.close()
    except Exception:  # the connection may be gone already
        pass


def _rollback(cursor: Any) -> None:
    with contextlib.suppress(Exception):  # a lost connection rolls back by itself
        cursor.execute("ROLLBACK")
