"""No task computed twice: a task's ``run()`` under a lock on its identity key.

Luigi's scheduler keeps a task from running twice among *its* workers only; two pipelines
started on their own (cron, notebooks, CI) would both compute a shared task. The lock lives
in the metadata database they share:

* **PostgreSQL**: a session-level advisory lock on a connection of our own,
  held while ``run()`` runs. A holder that dies ends its session: free at once.
* **SQLite**: a lease row in ``ll_task_locks`` lasting ``LEASE_S`` seconds, renewed every
  ``LEASE_S / 3`` by one thread per process; a dead holder's lease is taken over once expired.

A waiting process retries with a backoff (up to ``MAX_POLL_S``), logs once who holds the lock
and since when, gives up after ``task_lock_timeout`` (``TaskLockTimeoutError``), and once it
holds the lock skips ``run()`` if ``complete()`` says another process saved the outputs.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import partial, wraps
from typing import Any, TypeVar

from sqlalchemy import exc
from sqlalchemy.engine import Engine

from ..db import executor
from ..db.engine import on_dispose, translate
from ..db.queries.task_locks import (
    ACQUIRE_ADVISORY,
    ACQUIRE_LEASE,
    HOLDER,
    RELEASE_ADVISORY,
    RELEASE_LEASE,
    RENEW_LEASE,
    lock_id,
)
from ..errors import DatabaseError, TaskLockTimeoutError
from ..model import as_utc
from ..store import ArtifactStore

log = logging.getLogger(__name__)

#: seconds a SQLite lease lasts unless renewed (its holder renews it every third of that);
#: how long a dead holder keeps a task from others. Tests make it shorter by assigning it.
LEASE_S = 30.0
#: longest pause between two tries of a waiting process (how soon it sees a release)
MAX_POLL_S = 1.0
FIRST_POLL_S = 0.005
#: the task's dict key saying its ``run()`` holds the lock (``super().run()`` won't retake it)
_HELD = "_ll_run_locked"
_HOST = socket.gethostname()[:200]
_LOST = (
    "%s: its task lock (a %g s lease) was taken over by another process, which may be "
    "computing the same task: this process stalled longer than the lease, or could not renew it"
)
_warned: set[str] = set()

F = TypeVar("F", bound=Callable[..., Any])
#: ``guard(task)``: the task's lock, now held (None: no lock, e.g. ``task_lock = false``)
Guard = Callable[[Any], "HeldLock | None"]


def locked_run(run: F, guard: Guard) -> F:
    """``run`` under ``guard``'s lock, skipped when the lock says the task is complete now.

    A generator ``run()`` (dynamic dependencies) stays a generator: the lock is
    held from its first step to its end, or until Luigi drops it to schedule
    the yielded tasks (closing it releases the lock; the task runs again later).
    Plain try/finally rather than context managers: this runs for every task.
    """
    if inspect.isgeneratorfunction(run):

        @wraps(run)
        def run_generator(task: Any, *args: Any, **kwargs: Any) -> Any:
            lock = _enter(task, guard)
            if lock is None:
                return (yield from run(task, *args, **kwargs))
            try:
                return (yield from run(task, *args, **kwargs)) if lock.go else None
            finally:
                _leave(task, lock)

        wrapper: Any = run_generator
    else:

        @wraps(run)
        def run_locked(task: Any, *args: Any, **kwargs: Any) -> Any:
            lock = _enter(task, guard)
            if lock is None:
                return run(task, *args, **kwargs)
            try:
                return run(task, *args, **kwargs) if lock.go else None
            finally:
                _leave(task, lock)

        wrapper = run_locked
    wrapper.ll_task_lock = True
    return wrapper  # type: ignore[no-any-return]


def _enter(task: Any, guard: Guard) -> HeldLock | None:
    """The lock taken for ``task`` (None: none taken, or an outer ``run()`` holds it)."""
    if task.__dict__.get(_HELD):  # an overriding run() called super().run()
        return None
    lock = guard(task)
    if lock is not None:
        task.__dict__[_HELD] = True
    return lock


def _leave(task: Any, lock: HeldLock) -> None:
    task.__dict__.pop(_HELD, None)
    lock.release()


def is_locked_run(run: Any) -> bool:
    """Whether ``run`` is already a ``locked_run`` wrapper (it is never wrapped twice)."""
    return bool(getattr(run, "ll_task_lock", False))


def hold(
    store: ArtifactStore, key: str, task_id: str, complete: Callable[[], bool]
) -> HeldLock | None:
    """The lock on ``key`` in ``store``'s database, waited for; ``go`` False if ``complete()``.

    ``store.settings.task_lock_timeout`` bounds the wait. The caller releases it.
    None where the database has no lock (neither SQLite nor PostgreSQL).
    """
    backend = store.records.url.get_backend_name()
    take = _TAKE.get(backend)
    if take is None:
        if backend not in _warned:
            _warned.add(backend)
            log.warning("task_lock: no task lock on %s databases; tasks run unlocked", backend)
        return None
    lock = HeldLock(store, key, task_id)
    take(lock, store.settings.task_lock_timeout)
    try:
        lock.go = not complete()
    except BaseException:
        lock.release()
        raise
    if not lock.go:
        msg = "%s: its outputs exist now (another process computed them); run() skipped"
        log.info(msg, task_id)
    return lock


# -- waiting --------------------------------------------------------------------------


class _Wait:
    """One task's wait for a lock another process holds: backoff, one log line, the timeout."""

    def __init__(
        self, task_id: str, key: str, timeout: float | None, who: Callable[[], Any]
    ) -> None:
        self.task_id, self.key, self.timeout, self.who = task_id, key, timeout, who
        self.started = time.monotonic()
        self.delay = FIRST_POLL_S
        self.told = False

    def pause(self) -> None:
        """Sleep before the next try; raise ``TaskLockTimeoutError`` once the wait is spent."""
        waited = time.monotonic() - self.started
        if not self.told:
            row = self.who()
            if row is not None or waited >= MAX_POLL_S:
                self.told = True
                limit = "none" if self.timeout is None else f"{self.timeout:g} s"
                msg = "%s: waiting for its task lock, held by %s (task_lock_timeout: %s)"
                log.warning(msg, self.task_id, _held_by(row), limit)
        if self.timeout is not None and waited >= self.timeout:
            raise TaskLockTimeoutError(
                f"{self.task_id} gave up after waiting {waited:.1f} s for its task lock "
                f"(identity key {self.key[:12]}…): {_held_by(self.who())} is computing the "
                f"same task. Let that process finish or stop it, raise [artifact_store] "
                f"task_lock_timeout (now {self.timeout:g} s; none waits as long as the holder "
                "lives), or set task_lock = false to let both compute it."
            )
        left = float("inf") if self.timeout is None else self.timeout - waited
        time.sleep(max(0.0, min(self.delay, left)))
        self.delay = min(self.delay * 2, MAX_POLL_S)


def _held_by(row: Any) -> str:
    if row is None:
        return "another process (not recorded yet)"
    since = as_utc(row.acquired_at)
    ago = (_now() - since).total_seconds()
    return f"{row.holder} since {since:%Y-%m-%d %H:%M:%S} UTC ({ago:.0f} s ago)"


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- the lock held ----------------------------------------------------------------------


class HeldLock:
    """A task lock this process holds: a lease (SQLite), or the session holding it (PostgreSQL).

    ``go``: whether ``run()`` should run (False: the outputs exist now).
    """

    __slots__ = ("active", "conn", "engine", "go", "lost", "params", "pid", "task_id", "url")

    def __init__(self, store: ArtifactStore, key: str, task_id: str) -> None:
        self.url, self.engine, self.task_id = store.records.url, store.records.engine(), task_id
        holder = _process().holder()
        self.params: dict[str, Any] = {"lock_key": key, "lock_holder": holder, "lock_task": task_id}
        self.pid = os.getpid()
        self.conn: Any = None  # PostgreSQL: the connection whose session holds the lock
        self.active = self.lost = False
        self.go = True

    def release(self) -> None:
        """Give the lock up; never raises (a lease expires, a closed session unlocks)."""
        if os.getpid() == self.pid:  # in a forked child the lock is its parent's
            self.release_lease() if self.conn is None else self.release_advisory()

    def release_lease(self) -> None:
        _process().discard(self)
        work, doing = partial(_first, RELEASE_LEASE, self.params), f"releasing {self.task_id}"
        try:
            gone = executor.run(self.url, self.engine, work, write=True, doing=doing)
        except DatabaseError as err:
            log.error("%s; the lease expires within %g s", err, LEASE_S)
            return
        if gone is None and not self.lost:
            self.lost_now()

    def release_advisory(self) -> None:
        conn, self.conn = self.conn, None
        try:
            with conn.cursor() as cursor:
                unlocked = executor.Tx(cursor, self.engine.dialect).scalar(
                    RELEASE_ADVISORY, self.params
                )
        except Exception as err:
            _close(conn)  # the session's end unlocks
            log.error("%s", translate(err, self.url, f"releasing the lock of {self.task_id}"))
            return
        if unlocked:
            _process().give_back(self.engine, conn)
        else:  # not held by this session (cannot happen while it lives): start afresh
            _close(conn)

    def lost_now(self) -> None:
        self.lost = True
        log.error(_LOST, self.task_id, LEASE_S)


def _take_lease(lock: HeldLock, timeout: float | None) -> None:
    """SQLite: insert the lease row, or take over an expired one; wait while another holds it."""
    params, url, engine = lock.params, lock.url, lock.engine
    doing = f"taking the task lock of {lock.task_id}"
    acquire = partial(_first, ACQUIRE_LEASE, params)
    wait: _Wait | None = None
    while True:
        now = _now()
        params["now"], params["expires"] = now, now + timedelta(seconds=LEASE_S)
        got = executor.run(url, engine, acquire, write=True, doing=doing)
        if got is not None:
            _process().add(lock)
            return
        if wait is None:
            holder = partial(_first, HOLDER, params)
            who = partial(executor.run, url, engine, holder, write=False, doing=doing)
            wait = _Wait(lock.task_id, params["lock_key"], timeout, who)
        wait.pause()


def _first(statement: Any, params: dict[str, Any], tx: executor.Executor) -> Any:
    return tx.first(statement, params)


def _take_advisory(lock: HeldLock, timeout: float | None) -> None:
    """PostgreSQL: the advisory lock on a connection of our own, kept until ``release``."""
    lock.params["lock_id"] = lock_id(lock.params["lock_key"])
    engine = lock.engine
    for attempt in (1, 2):  # a kept connection may have died with a restarted server
        conn, kept = None, False
        try:
            conn, kept = _process().connection(engine)
            with conn.cursor() as cursor:
                _wait_for_advisory(executor.Tx(cursor, engine.dialect), lock, timeout)
            lock.conn = conn
            return
        except BaseException as err:
            _close(conn)  # whatever the session holds goes with it
            if not isinstance(err, (engine.dialect.loaded_dbapi.Error, exc.SQLAlchemyError)):
                raise
            if not (kept and attempt == 1):
                down = (exc.OperationalError, engine.dialect.loaded_dbapi.OperationalError)
                doing, operational = (
                    f"taking the task lock of {lock.task_id}",
                    isinstance(err, down),
                )
                raise translate(err, lock.url, doing, operational=operational) from None


def _wait_for_advisory(tx: executor.Tx, lock: HeldLock, timeout: float | None) -> None:
    params = lock.params
    wait: _Wait | None = None
    while True:
        params["now"] = params["expires"] = _now()  # the lock lasts as long as the session
        if tx.first(ACQUIRE_ADVISORY, params) is not None:
            return
        if wait is None:
            who = partial(tx.first, HOLDER, params)
            wait = _Wait(lock.task_id, params["lock_key"], timeout, who)
        wait.pause()


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):  # already broken; closing is only tidying up
            conn.close()


_TAKE: dict[str, Callable[[HeldLock, float | None], None]] = {
    "sqlite": _take_lease,
    "postgresql": _take_advisory,
}


# -- per process ----------------------------------------------------------------------


class _Process:
    """This process's locks: holder names, the lease renewer, idle lock connections.

    A forked child starts a new one; the parent's is kept (``_inherited``) and
    never touched again: closing an inherited connection would end the
    parent's session, and free the parent's locks.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = secrets.token_hex(3)
        self.count = itertools.count(1)
        self.mutex = threading.Lock()
        self.leases: dict[int, HeldLock] = {}
        self.renewer: threading.Thread | None = None
        self.idle: dict[Engine, list[Any]] = {}

    def holder(self) -> str:
        """``"<host> pid <pid>"`` and a token unique to one acquisition."""
        return f"{_HOST} pid {self.pid} #{self.token}.{next(self.count)}"

    def add(self, lease: HeldLock) -> None:
        """Renew ``lease`` from now on (the renewer thread starts with the first lease)."""
        with self.mutex:
            lease.active = True
            self.leases[id(lease)] = lease
            if self.renewer is None:
                self.renewer = threading.Thread(
                    target=self.renew_forever, name="linea-luigi task lock renewer", daemon=True
                )
                self.renewer.start()

    def discard(self, lease: HeldLock) -> None:
        with self.mutex:
            lease.active = False
            self.leases.pop(id(lease), None)

    def renew_forever(self) -> None:
        while True:
            time.sleep(LEASE_S / 3)
            by_engine: dict[Engine, list[HeldLock]] = {}
            with self.mutex:
                for lease in self.leases.values():
                    by_engine.setdefault(lease.engine, []).append(lease)
            for group in by_engine.values():
                self.renew(group)

    def renew(self, leases: list[HeldLock]) -> None:
        """Push the leases of one database on, in one transaction; report those lost."""
        expires = _now() + timedelta(seconds=LEASE_S)

        def work(tx: executor.Executor) -> list[HeldLock]:
            gone = [tx.first(RENEW_LEASE, {**x.params, "expires": expires}) for x in leases]
            return [lease for lease, row in zip(leases, gone, strict=True) if row is None]

        try:
            lost = executor.run(
                leases[0].url, leases[0].engine, work, write=True, doing="renewing task locks"
            )
        except DatabaseError as err:
            log.warning("%s; trying again in %g s", err, LEASE_S / 3)
            return
        with self.mutex:
            lost = [lease for lease in lost if lease.active and not lease.lost]
        for lease in lost:
            lease.lost_now()

    def connection(self, engine: Engine) -> tuple[Any, bool]:
        """A connection of our own to ``engine``'s database, and whether it was kept idle."""
        with self.mutex:
            idle = self.idle.get(engine)
            if idle:
                return idle.pop(), True
        proxy = engine.raw_connection()  # the engine's connect events run (lock_timeout)
        conn: Any = proxy.driver_connection
        proxy.detach()  # ours: never returned to the engine's pool
        conn.autocommit = True
        with conn.cursor() as cursor:  # the row only informs waiters: no wait for WAL flushes
            cursor.execute("SET synchronous_commit = off")
        return conn, False

    def give_back(self, engine: Engine, conn: Any) -> None:
        with self.mutex:
            self.idle.setdefault(engine, []).append(conn)

    def close_idle(self) -> None:
        with self.mutex:
            idle, self.idle = self.idle, {}
        for conn in itertools.chain.from_iterable(idle.values()):
            _close(conn)


_state: list[_Process] = []
_inherited: list[_Process] = []
_state_lock = threading.Lock()


def _process() -> _Process:
    """This process's ``_Process``, made on first use and again after a fork."""
    if _state and _state[0].pid == os.getpid():
        return _state[0]
    with _state_lock:
        if not (_state and _state[0].pid == os.getpid()):
            _inherited.extend(_state)
            _state[:] = [_Process()]
        return _state[0]


on_dispose.append(lambda: _process().close_idle())
