"""Version allocation: the one place that decides the next version of a name.

An atomic upsert on the per-name counter row (``INSERT … ON CONFLICT DO UPDATE
… RETURNING``). The row stays locked until the caller's transaction ends, so
concurrent savers of one name are serialised and get contiguous versions; a
rolled-back save gives its number back. Versions are never reused, even after
the artifacts holding them were deleted.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .schema import VersionCounterRow


def allocate_version(session: Session, name: str) -> int:
    """Reserve and return the next version of ``name`` (0 for a new name)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = (
            insert(VersionCounterRow)
            .values(name=name, next_version=1)
            .on_conflict_do_update(
                index_elements=[VersionCounterRow.name],
                set_={"next_version": VersionCounterRow.next_version + 1},
            )
            .returning(VersionCounterRow.next_version)
        )
        return int(session.execute(stmt).scalar_one()) - 1
    return _allocate_portable(session, name)


def _allocate_portable(session: Session, name: str) -> int:
    """Fallback for other databases: lock the counter row, then bump it."""
    current = session.execute(
        select(VersionCounterRow.next_version)
        .where(VersionCounterRow.name == name)
        .with_for_update()
    ).scalar_one_or_none()
    if current is None:
        session.add(VersionCounterRow(name=name, next_version=1))
        session.flush()
        return 0
    session.execute(
        update(VersionCounterRow)
        .where(VersionCounterRow.name == name)
        .values(next_version=current + 1)
    )
    return int(current)
