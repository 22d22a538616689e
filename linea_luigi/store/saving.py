"""A save's order of operations: the value first, then its row, and cleaning up after a failure.

The value is completely written and hashed *before* its row is committed, so
a crash leaves at worst an unreferenced file (gc's orphan), never a row
without a value. If the commit fails, the value is removed again, except
when the commit's outcome is unknown: then the row may exist, so the value
stays.

Identical values are stored once: when a value with the same digest,
serializer and size is already referenced by a row of this database (one
database, one storage root), the new row gets that row's location and the
save's own copy is removed after the commit (``stored_copy`` explains why a
concurrent delete or gc cannot remove the shared object meanwhile). The
new row is otherwise as it would be; only the bytes are shared. Where the
digest can be known before writing (``prehash``), a stored identical value
is looked for first, and then nothing is written at all. ``dedup = false``
turns all of this off: every save keeps its own copy, with no extra query.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine

from ..db import executor
from ..db.queries import lineage
from ..db.queries.artifacts import INSERT_ARTIFACT, new_row, stored_copy
from ..db.queries.versions import allocate_version
from ..errors import CommitOutcomeUnknownError
from ..model import Artifact, TaskInfo
from ..settings import Settings
from ..storage import ValueStorage
from ..storage.cache import ValueCache
from . import prehash, value_io
from .records import Records

log = logging.getLogger(__name__)


class _NothingStored(Exception):
    """No stored identical value to point at: the transaction is rolled back, nothing written."""


def save(
    records: Records,
    values: ValueStorage,
    settings: Settings,
    value: Any,
    name: str,
    task: TaskInfo | None,
    upstream: Iterable[Artifact],
    serializer: str | None,
    cache: ValueCache | None,
) -> Artifact:
    """Write ``value`` as the next version of ``name`` (already checked) and commit its row.

    ``cache``: the store's local cache, filled while the value uploads (None: none).
    """
    parents = lineage.parents(upstream)
    engine = records.engine()  # a wrong database fails before any write
    wanted = settings.serializer if serializer is None else serializer
    share = settings.dedup
    known = prehash.digest_first(values, value, wanted, settings.checksum) if share else None
    if known is not None:  # an identical value may be stored: then nothing is uploaded
        row = new_row(name, known.columns(), task)
        if _publish(records, engine, row, parents, None, share):
            return _saved(records, row)
    written = value_io.write(values, value, name, settings.checksum, wanted, cache)
    location = written.location
    row = new_row(name, written.columns(), task)
    try:
        _publish(records, engine, row, parents, location, share)
    except CommitOutcomeUnknownError:
        if row["location"] != location:  # a row, if committed, points at the shared copy
            value_io.discard(values, location)
        else:  # the row may be committed: its value must stay (at worst an orphan)
            log.warning("kept the value %s of a save whose commit was cut off", location)
        raise
    except BaseException:
        value_io.discard(values, location)
        raise
    if row["location"] != location:  # stored once: only the row's copy stays
        value_io.discard(values, location)
    return _saved(records, row)


def _publish(
    records: Records,
    engine: Engine,
    row: dict[str, Any],
    parents: list[tuple[str, int]],
    own: str | None,
    share: bool,
) -> bool:
    """Commit ``row`` pointing at a stored identical value, else at ``own`` (the value written).

    ``own`` None: the value was not written, so the row is committed only if
    an identical value is stored; returns whether it was. ``share`` False:
    ``own`` is kept without looking for a stored identical value.
    """
    dialect, name = engine.dialect.name, row["name"]

    def publish(tx: executor.Executor) -> None:
        row["version"] = allocate_version(tx, dialect, name)
        shared = stored_copy(tx, row) if share else None
        if shared is None and own is None:
            raise _NothingStored
        row["location"] = shared or own  # set again by every attempt
        child_id = tx.scalar(INSERT_ARTIFACT, row)
        if parents:
            lineage.link(tx, child_id, parents, name)

    try:
        executor.run(records.url, engine, publish, write=True, doing=f"saving artifact {name!r}")
    except _NothingStored:
        return False
    return True


def _saved(records: Records, row: dict[str, Any]) -> Artifact:
    log.debug(
        "saved %s v%d (%d bytes) at %s",
        row["name"],
        row["version"],
        row["size_bytes"],
        row["location"],
    )
    return records.artifact(SimpleNamespace(**row))
