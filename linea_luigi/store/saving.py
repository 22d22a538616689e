"""A save's order of operations: the value first, then its row, and cleaning up after a failure.

The value is completely written and hashed *before* its row is committed, so
a crash leaves at worst an unreferenced file (gc's orphan), never a row
without a value. If the commit fails, the value is removed again, except
when the commit's outcome is unknown: then the row may exist, so the value
stays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from ..db import executor
from ..db.queries import lineage
from ..db.queries.artifacts import INSERT_ARTIFACT, new_row
from ..db.queries.versions import allocate_version
from ..errors import CommitOutcomeUnknownError
from ..model import Artifact, TaskInfo
from ..settings import Settings
from ..storage import ValueStorage
from . import value_io
from .records import Records

log = logging.getLogger(__name__)


def save(
    records: Records,
    values: ValueStorage,
    settings: Settings,
    value: Any,
    name: str,
    task: TaskInfo | None,
    upstream: Iterable[Artifact],
    serializer: str | None,
) -> Artifact:
    """Write ``value`` as the next version of ``name`` (already checked) and commit its row."""
    parents = lineage.parents(upstream)
    engine = records.engine()  # a wrong database fails before any write
    dialect = engine.dialect.name
    wanted = settings.serializer if serializer is None else serializer
    written = value_io.write(values, value, name, settings.checksum, wanted)
    location = written.location
    row = new_row(name, written.columns(), task)

    def publish(tx: executor.Executor) -> None:
        row["version"] = allocate_version(tx, dialect, name)
        child_id = tx.scalar(INSERT_ARTIFACT, row)
        if parents:
            lineage.link(tx, child_id, parents, name)

    try:
        executor.run(records.url, engine, publish, write=True, doing=f"saving artifact {name!r}")
    except CommitOutcomeUnknownError:
        # the row may be committed: its value must stay (at worst an orphan)
        log.warning("kept the value %s of a save whose commit was cut off", location)
        raise
    except BaseException:
        value_io.discard(values, location)
        raise
    log.debug("saved %s v%d (%d bytes) at %s", name, row["version"], row["size_bytes"], location)
    return records.artifact(SimpleNamespace(**row))
