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

import inspect
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial, wraps
from typing import Any, TypeVar

from sqlalchemy import exc

from ..db import executor
from ..db.engine import translate
from ..db.queries.task_locks import (
    ACQUIRE_ADVISORY,
    ACQUIRE_LEASE,
    HOLDER,
    RELEASE_ADVISORY,
    RELEASE_LEASE,
    lock_id,
)
from ..errors import DatabaseError, TaskLockTimeoutError
from ..model import as_utc
from ..store import ArtifactStore
from . import lock_process
from .lock_process import close_quietly, now

log = logging.getLogger(__name__)

#: seconds a SQLite lease lasts unless renewed (its holder renews it every third of that);
#: how long a dead holder keeps a task from others. Tests make it shorter by assigning it.
LEASE_S = 30.0
#: longest pause between two tries of a waiting process (how soon it sees a release)
MAX_POLL_S = 1.0
FIRST_POLL_S = 0.005
#: the task's dict key saying its ``run()`` holds the lock (``super().run()`` won't retake it)
_HELD = "_ll_run_locked"
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
    ago = (now() - since).total_seconds()
    return f"{row.holder} since {since:%Y-%m-%d %H:%M:%S} UTC ({ago:.0f} s ago)"


# -- the lock held ----------------------------------------------------------------------


class HeldLock:
    """A task lock this process holds: a lease (SQLite), or the session holding it (PostgreSQL).

    ``go``: whether ``run()`` should run (False: the outputs exist now).
    """

    __slots__ = (
        "active",
        "conn",
        "engine",
        "go",
        "lease_s",
        "lost",
        "params",
        "pid",
        "task_id",
        "url",
    )

    def __init__(self, store: ArtifactStore, key: str, task_id: str) -> None:
        self.url, self.engine, self.task_id = store.records.url, store.records.engine(), task_id
        holder = lock_process.current().holder()
        self.params: dict[str, Any] = {"lock_key": key, "lock_holder": holder, "lock_task": task_id}
        self.pid = os.getpid()
        self.conn: Any = None  # PostgreSQL: the connection whose session holds the lock
        self.active = self.lost = False
        self.go = True
        self.lease_s = LEASE_S  # read now: tests shorten LEASE_S

    def release(self) -> None:
        """Give the lock up; never raises (a lease expires, a closed session unlocks)."""
        if os.getpid() == self.pid:  # in a forked child the lock is its parent's
            self.release_lease() if self.conn is None else self.release_advisory()

    def release_lease(self) -> None:
        lock_process.current().discard(self)
        work, doing = partial(_first, RELEASE_LEASE, self.params), f"releasing {self.task_id}"
        try:
            gone = executor.run(self.url, self.engine, work, write=True, doing=doing, single=True)
        except DatabaseError as err:
            log.error("%s; the lease expires within %g s", err, self.lease_s)
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
            close_quietly(conn)  # the session's end unlocks
            log.error("%s", translate(err, self.url, f"releasing the lock of {self.task_id}"))
            return
        if unlocked:
            lock_process.current().give_back(self.engine, conn)
        else:  # not held by this session (cannot happen while it lives): start afresh
            close_quietly(conn)

    def lost_now(self) -> None:
        self.lost = True
        log.error(_LOST, self.task_id, self.lease_s)


def _take_lease(lock: HeldLock, timeout: float | None) -> None:
    """SQLite: insert the lease row, or take over an expired one; wait while another holds it."""
    params, url, engine = lock.params, lock.url, lock.engine
    doing = f"taking the task lock of {lock.task_id}"
    acquire = partial(_first, ACQUIRE_LEASE, params)
    wait: _Wait | None = None
    while True:
        stamp = now()
        params["now"], params["expires"] = stamp, stamp + timedelta(seconds=lock.lease_s)
        got = executor.run(url, engine, acquire, write=True, doing=doing, single=True)
        if got is not None:
            lock_process.current().add(lock)
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
            conn, kept = lock_process.current().connection(engine)
            with conn.cursor() as cursor:
                _wait_for_advisory(executor.Tx(cursor, engine.dialect), lock, timeout)
            lock.conn = conn
            return
        except BaseException as err:
            close_quietly(conn)  # whatever the session holds goes with it
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
        params["now"] = params["expires"] = now()  # the lock lasts as long as the session
        if tx.first(ACQUIRE_ADVISORY, params) is not None:
            return
        if wait is None:
            who = partial(tx.first, HOLDER, params)
            wait = _Wait(lock.task_id, params["lock_key"], timeout, who)
        wait.pause()


_TAKE: dict[str, Callable[[HeldLock, float | None], None]] = {
    "sqlite": _take_lease,
    "postgresql": _take_advisory,
}
