"""The task lock's statements (``integration.task_lock``), built once.

Two ways to hold a lock on an identity key, one table (``ll_task_locks``):

* **SQLite**: the row *is* the lock, a lease. ``ACQUIRE_LEASE`` inserts it, or
  takes over a row whose ``expires_at`` has passed (its holder died or
  stalled), and returns the key only when this call got it; ``RENEW_LEASE``
  pushes ``expires_at`` on and ``RELEASE_LEASE`` deletes the row, both only
  while ``holder`` is still ours.
* **PostgreSQL**: a session-level advisory lock on a 64-bit number taken from
  the key. ``ACQUIRE_ADVISORY`` tries the lock and, only when it got it, writes
  the row that tells waiters who holds it, in one round trip; ``RELEASE_ADVISORY``
  deletes our row and unlocks, in one round trip. A row left by a holder that
  died (its session ended, so its lock is free) is simply overwritten.

Parameters: ``lock_key`` (the identity key), ``lock_holder``, ``lock_task``
(the task id), ``now``, ``expires`` and, on PostgreSQL, ``lock_id``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from ..schema import TASK_LOCKS

_T = TASK_LOCKS.c
_KEY = bindparam("lock_key", type_=_T.key.type)
_HOLDER = bindparam("lock_holder", type_=_T.holder.type)
_OURS = (_T.key == _KEY) & (_T.holder == _HOLDER)
_NEW_ROW = {
    "key": _KEY,
    "holder": _HOLDER,
    "task_id": bindparam("lock_task", type_=_T.task_id.type),
    "acquired_at": bindparam("now", type_=_T.acquired_at.type),
    "expires_at": bindparam("expires", type_=_T.expires_at.type),
}
_TAKEN_OVER = ("holder", "task_id", "acquired_at", "expires_at")

#: who holds the lock on ``lock_key`` and since when (no row: nobody, or not written yet)
HOLDER: Select[Any] = select(_T.holder, _T.task_id, _T.acquired_at).where(_T.key == _KEY)


def _acquire_lease() -> Executable:
    insert = sqlite.insert(TASK_LOCKS).values(_NEW_ROW)
    return insert.on_conflict_do_update(
        index_elements=[_T.key],
        set_={c: insert.excluded[c] for c in _TAKEN_OVER},
        where=_T.expires_at < insert.excluded.acquired_at,
    ).returning(_T.key)


#: SQLite: the key when this call now holds the lease (inserted, or taken over after expiry)
ACQUIRE_LEASE = _acquire_lease()
#: SQLite: the key while ``lock_holder`` still holds the lease, which now lasts until ``expires``
RENEW_LEASE = (
    update(TASK_LOCKS)
    .where(_OURS)
    .values(expires_at=bindparam("expires", type_=_T.expires_at.type))
    .returning(_T.key)
)
#: SQLite: the key when ``lock_holder`` still held the lease, which is now gone
RELEASE_LEASE = delete(TASK_LOCKS).where(_OURS).returning(_T.key)


def _acquire_advisory() -> Executable:
    lock_id = bindparam("lock_id", type_=BigInteger)
    got = select(func.pg_try_advisory_lock(lock_id).label("ok")).cte("got")
    row = select(*_NEW_ROW.values()).where(got.c.ok)
    insert = postgresql.insert(TASK_LOCKS).from_select(list(_NEW_ROW), row)
    return insert.on_conflict_do_update(
        index_elements=[_T.key], set_={c: insert.excluded[c] for c in _TAKEN_OVER}
    ).returning(_T.key)


def _release_advisory() -> Executable:
    gone = delete(TASK_LOCKS).where(_OURS).cte("gone")
    unlock = func.pg_advisory_unlock(bindparam("lock_id", type_=BigInteger))
    return select(unlock.label("unlocked")).add_cte(gone)


#: PostgreSQL: the key when this session got the advisory lock (and wrote the row)
ACQUIRE_ADVISORY = _acquire_advisory()
#: PostgreSQL: whether this session held the advisory lock (now released); our row deleted
RELEASE_ADVISORY = _release_advisory()


def lock_id(key: str) -> int:
    """The advisory lock number of identity key ``key``: its first 16 hex digits, signed."""
    number = int(key[:16], 16)
    return number - (1 << 64) if number >= 1 << 63 else number
