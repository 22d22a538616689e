"""What one process keeps for its task locks: holder names, the lease renewer, idle connections.

``integration.task_lock`` takes and releases the locks; this module holds the state
that outlives one lock. A forked child starts afresh (``current()``); the parent's
state is kept and never touched again: closing an inherited connection would end
the parent's session, and free the parent's locks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from sqlalchemy.engine import URL, Engine

from ..db import executor
from ..db.engine import on_dispose
from ..db.queries.task_locks import RENEW_LEASE
from ..errors import DatabaseError

log = logging.getLogger(__name__)

_HOST = socket.gethostname()[:200]
#: the renewer's pause while no lease is held (a new lease wakes it)
_IDLE_S = 10.0


class Lease(Protocol):
    """A SQLite lease this process holds and renews (``task_lock.HeldLock``)."""

    url: URL
    engine: Engine
    params: dict[str, Any]
    lease_s: float
    active: bool
    lost: bool

    def lost_now(self) -> None: ...


def now() -> datetime:
    """The time leases are stamped with (UTC, aware)."""
    return datetime.now(timezone.utc)


def close_quietly(conn: Any) -> None:
    """Close a connection that may be broken already; closing is only tidying up."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


class ProcessLocks:
    """This process's task-lock state (one per process, see ``current``)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.token = secrets.token_hex(3)
        self.count = itertools.count(1)
        self.mutex = threading.Lock()
        #: set when a lease shorter than the renewer's current pause arrives
        self.wake = threading.Event()
        self.pause = _IDLE_S
        self.leases: dict[int, Lease] = {}
        self.renewer: threading.Thread | None = None
        self.idle: dict[Engine, list[Any]] = {}

    def holder(self) -> str:
        """``"<host> pid <pid>"`` and a token unique to one acquisition."""
        return f"{_HOST} pid {self.pid} #{self.token}.{next(self.count)}"

    def add(self, lease: Lease) -> None:
        """Renew ``lease`` from now on (the renewer thread starts with the first lease)."""
        with self.mutex:
            lease.active = True
            self.leases[id(lease)] = lease
            if lease.lease_s / 3 < self.pause:
                self.wake.set()
            if self.renewer is None:
                self.renewer = threading.Thread(
                    target=self.renew_forever, name="linea-luigi task lock renewer", daemon=True
                )
                self.renewer.start()

    def discard(self, lease: Lease) -> None:
        with self.mutex:
            lease.active = False
            self.leases.pop(id(lease), None)

    def renew_forever(self) -> None:
        """Every third of the shortest lease held, push every lease on."""
        while True:
            with self.mutex:
                shortest = min((x.lease_s for x in self.leases.values()), default=_IDLE_S * 3)
                self.pause = shortest / 3
            if self.wake.wait(self.pause):  # a shorter lease: pause by its measure instead
                self.wake.clear()
                continue
            by_engine: dict[Engine, list[Lease]] = {}
            with self.mutex:
                for lease in self.leases.values():
                    by_engine.setdefault(lease.engine, []).append(lease)
            for group in by_engine.values():
                self.renew(group)

    def renew(self, leases: list[Lease]) -> None:
        """Push the leases of one database on, in one transaction; report those lost."""
        stamp = now()

        def work(tx: executor.Executor) -> list[Lease]:
            gone = [
                tx.first(RENEW_LEASE, {**x.params, "expires": stamp + timedelta(seconds=x.lease_s)})
                for x in leases
            ]
            return [lease for lease, row in zip(leases, gone, strict=True) if row is None]

        first = leases[0]
        try:
            lost = executor.run(
                first.url, first.engine, work, write=True, doing="renewing task locks"
            )
        except DatabaseError as err:
            log.warning("%s; trying again in %g s", err, first.lease_s / 3)
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
            close_quietly(conn)


_state: list[ProcessLocks] = []
_inherited: list[ProcessLocks] = []
_state_lock = threading.Lock()


def current() -> ProcessLocks:
    """This process's ``ProcessLocks``, made on first use and again after a fork."""
    if _state and _state[0].pid == os.getpid():
        return _state[0]
    with _state_lock:
        if not (_state and _state[0].pid == os.getpid()):
            _inherited.extend(_state)
            _state[:] = [ProcessLocks()]
        return _state[0]


on_dispose.append(lambda: current().close_idle())
