"""Version allocation: the one place that decides the next version of a name.

An atomic upsert on the per-name counter row (``INSERT … ON CONFLICT DO UPDATE
… RETURNING``). The row stays locked until the caller's transaction ends, so
concurrent savers of one name are serialised and get contiguous versions; a
rolled-back save gives its number back. Versions are never reused, even after
the artifacts holding them were deleted.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.sql.expression import Executable

from ..executor import Executor
from ..schema import VERSION_COUNTERS

_counter = VERSION_COUNTERS.c


def allocate_version(tx: Executor, dialect: str, name: str) -> int:
    """Reserve and return the next version of ``name`` (0 for a new name)."""
    upsert = _upsert(dialect)
    if upsert is not None:
        return int(tx.scalar(upsert, {"name": name})) - 1
    return _allocate_portable(tx, name)


@functools.cache
def _upsert(dialect: str) -> Executable | None:
    """The prebuilt allocating upsert for ``dialect``, or None where there is none."""
    insert: Any
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        return None
    stmt: Executable = (
        insert(VERSION_COUNTERS)
        .values(name=bindparam("name"), next_version=1)
        .on_conflict_do_update(
            index_elements=[_counter.name],
            set_={"next_version": _counter.next_version + 1},
        )
        .returning(_counter.next_version)
    )
    return stmt


def _allocate_portable(tx: Executor, name: str) -> int:
    """Fallback for other databases: lock the counter row, then bump it."""
    current = tx.scalar(
        select(_counter.next_version).where(_counter.name == name).with_for_update(), {}
    )
    if current is None:
        tx.execute(VERSION_COUNTERS.insert().values(name=name, next_version=1), {})
        return 0
    tx.execute(
        update(VERSION_COUNTERS).where(_counter.name == name).values(next_version=current + 1), {}
    )
    return int(current)
