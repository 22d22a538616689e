"""``Records``: the database side of one store, and the layers' internal interface to it.

An ``ArtifactStore`` is a ``Records`` (``store.records``: this process's
engine, transactions, rows as ``Artifact``) and a ``ValueStorage``
(``store.values``: the bytes). The store orchestrates the two; gc and the
browser read through the same two objects, never through the store's
private names.

The engine is looked up once per process: a store is pickled to Luigi
workers and used after ``fork``, so the cached engine is keyed by the
process id, and the schema is checked (``db.setup.ensure_ready``) once per
process before the first statement.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select

from ..db import executor
from ..db.engine import get_engine, transaction
from ..db.queries.artifacts import LATEST_BY_KEYS, find, lookup_params
from ..db.queries.chunks import chunked
from ..db.setup import ensure_ready
from ..model import Artifact, ArtifactSource, as_utc
from ..settings import Settings
from ..storage import ValueStorage

T = TypeVar("T")


class Records:
    """Artifact rows of one store: read and written in transactions, handed out as ``Artifact``.

    Not pickled: the store rebuilds it from its settings in each process.
    """

    def __init__(self, settings: Settings, values: ValueStorage, owner: ArtifactSource) -> None:
        self.url = settings.database_url
        self._lock_timeout = settings.lock_timeout
        self._values = values
        self._owner = owner
        self._process: tuple[int, Engine] | None = None

    def engine(self) -> Engine:
        """This process's engine, the schema checked once per process."""
        process = self._process
        if process is None or process[0] != os.getpid():
            engine = get_engine(self.url, self._lock_timeout)
            ensure_ready(self.url, self._values.root_uri, engine)
            process = (os.getpid(), engine)
            self._process = process
        return process[1]

    def read(self, work: Callable[[Connection], T], doing: str) -> T:
        """``work(conn)`` in one read transaction (``db.engine.transaction``)."""
        return transaction(self.url, work, write=False, doing=doing, engine=self.engine())

    def write(self, work: Callable[[Connection], T], doing: str) -> T:
        """``work(conn)`` in one write transaction, retried whole on a lock (``db.engine``)."""
        return transaction(self.url, work, write=True, doing=doing, engine=self.engine())

    def first(self, statement: Select[Any], doing: str, **params: Any) -> Any:
        """The first row of a prebuilt ``statement``, on the hot path (``db.executor``)."""
        return executor.run(
            self.url,
            self.engine(),
            lambda tx: tx.first(statement, params),
            write=False,
            doing=doing,
        )

    def rows(self, q: Select[Any], doing: str) -> list[Artifact]:
        """The artifacts of the rows ``q`` selects, in one read transaction."""
        return self.read(lambda conn: self.artifacts(conn.execute(q)), doing)

    def artifact(self, row: Any) -> Artifact:
        """The public record of a row of ``ll_artifacts`` (anything with its columns)."""
        return Artifact(
            name=row.name,
            version=row.version,
            created_at=as_utc(row.created_at),
            uri=self._values.uri(row.location),
            location=row.location,
            serializer=row.serializer,
            size_bytes=row.size_bytes,
            digest=row.digest,
            python_version=row.python_version,
            task_family=row.task_family,
            task_id=row.task_id,
            identity_key=row.identity_key,
            params=row.params,
            value_type=row.value_type,
            libraries=row.libraries,
            _store=self._owner,
        )

    def latest_by_keys(self, name: str, keys: Iterable[str]) -> dict[str, Artifact]:
        """The latest row of ``name`` per key of ``keys``, ``PER_QUERY`` keys per query."""

        def latest(conn: Connection, part: Sequence[str]) -> Sequence[Any]:
            return conn.execute(LATEST_BY_KEYS, {"name": name, "keys": part}).all()

        found: dict[str, Artifact] = {}
        for part in chunked(list(dict.fromkeys(keys))):
            for row in self.read(partial(latest, part=part), f"reading artifact {name!r}"):
                found[row.identity_key] = self.artifact(row)
        return found

    def still_stored(self, artifact: Artifact) -> bool:
        """Whether ``artifact``'s row still exists with its value (a failed read asks)."""
        row = self.first(
            find(False, False),
            f"checking artifact {artifact.name!r}",
            **lookup_params(artifact.name, artifact.version, None),
        )
        return row is not None and row.location == artifact.location

    def artifacts(self, rows: Iterable[Any]) -> list[Artifact]:
        """``artifact`` of each row."""
        return [self.artifact(r) for r in rows]
