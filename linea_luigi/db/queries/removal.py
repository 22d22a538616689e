"""Removing artifact rows, the first half of "rows first, then the values no row references".

``ArtifactStore.delete`` and gc both delete rows with ``delete_rows``, in
their own write transaction, and get back the values that no remaining row
references; only after the commit do they remove those values
(``store.gc.remove_values``). A crash in between leaves unreferenced files,
which gc finds, never a row without its value.

Rows with identical values share one object (``store.saving``), so a
deleted row's location is freed only when no remaining row references it.
The check runs after the deleted rows were locked: a save that reuses one of
these objects holds a conflicting lock from its lookup to its commit
(``artifacts.stored_copy``), so its new row is either seen here or the save
found no row to reuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, delete, select

from ..schema import ARTIFACTS, LINEAGE
from .chunks import chunked

_A = ARTIFACTS.c
_L = LINEAGE.c


def delete_rows(conn: Connection, rows: Iterable[tuple[int, str]]) -> list[str]:
    """Delete the ``(id, location)`` rows and their lineage edges; the locations now unused.

    The caller has locked the rows and checked that nothing (an alias, a kept
    artifact's lineage) still needs them. Returns, sorted, the locations of
    the deleted rows that no remaining row references.
    """
    rows = list(rows)
    for part in chunked([row_id for row_id, _ in rows]):
        conn.execute(delete(LINEAGE).where(_L.child_id.in_(part)))
        conn.execute(delete(LINEAGE).where(_L.parent_id.in_(part)))
        conn.execute(delete(ARTIFACTS).where(_A.id.in_(part)))
    locations = sorted({location for _, location in rows})
    used = referenced(conn, locations)
    return [location for location in locations if location not in used]


def shared_elsewhere(conn: Connection, rows: Iterable[tuple[int, str]]) -> set[str]:
    """The locations of the ``(id, location)`` rows that rows other than these reference too.

    What deleting exactly these rows would leave in place (a dry-run gc's estimate).
    """
    rows = list(rows)
    ids = {row_id for row_id, _ in rows}
    found: set[str] = set()
    for part in chunked(sorted({location for _, location in rows})):
        query = select(_A.id, _A.location).where(_A.location.in_(part))
        found.update(location for row_id, location in conn.execute(query) if row_id not in ids)
    return found


def referenced(conn: Connection, locations: Sequence[str]) -> set[str]:
    """Those of ``locations`` that some row of ``ll_artifacts`` references (index on location).

    Any row counts: several versions, of one name or of many, may share an object.
    """
    found: set[str] = set()
    for part in chunked(locations):
        found.update(conn.scalars(select(_A.location).where(_A.location.in_(part))))
    return found
