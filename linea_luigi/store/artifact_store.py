"""``ArtifactStore``: versioned values, metadata in SQL, bytes in fsspec storage.

The store joins the pieces and owns the order of operations that keeps data
safe: a value is completely written and hashed *before* its row is committed
(``saving``: a crash leaves at worst an unreferenced file, never a row without
a value), and rows are deleted *before* their values. The store never imports
Luigi.

Every database access is SQLAlchemy Core with statements built once per
process (``db.queries``): a Luigi pipeline calls ``exists``, ``get`` and
``save`` once or twice per task, and an ORM unit of work would cost more than
the task's own I/O. The store is ``records`` and ``values`` (``store.records``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection

from ..db.queries import aliases, lineage
from ..db.queries.artifacts import (
    LATEST_VERSION,
    find,
    find_id,
    latest_per_name,
    located,
    lookup_params,
    probe,
    versions_of,
    with_params_of,
)
from ..db.queries.history import artifacts_of_run_query, runs_of_task
from ..db.queries.removal import delete_rows
from ..errors import (
    InvalidArgumentError,
    StorageError,
)
from ..model import Artifact, GcReport, TaskInfo, TaskRun
from ..names import (
    LATEST,
    SEPARATOR,
    check_alias,
    check_count,
    check_name,
    parse_version,
    split_ref,
)
from ..settings import Settings, resolve_settings
from ..settings.urls import mask_url
from ..storage import ValueStorage
from ..storage.cache import ValueCache
from . import alias_ops, messages, saving, value_io
from .gc import Duration, collect, remove_values
from .params import matchers, matches
from .records import Records

log = logging.getLogger(__name__)

T = TypeVar("T")
ArtifactList = list[Artifact]
TaskRunList = list[TaskRun]


class ArtifactStore:
    """Save, find, load and delete versioned artifacts.

    Pickles as settings only: engines and filesystems are looked up per
    process, so a store can be sent to Luigi workers and used after ``fork``.
    ``records`` and ``values``: the layers' internal interface (``store.records``).
    """

    settings: Settings
    #: where the values live (``storage.ValueStorage``)
    values: ValueStorage
    #: the database side: engine, transactions, rows as ``Artifact`` (``store.records``)
    records: Records
    #: the local copies of remote values (``storage.cache``); None when off or storage is local
    cache: ValueCache | None = None

    def __init__(
        self,
        db_url: str | Any,
        storage_dir: str | Any,
        storage_options: dict[str, Any] | None = None,
        *,
        checksum: str | None = None,
        lock_timeout: float | None = None,
        serializer: str | None = None,
        cache_dir: str | None = None,
        cache_max_bytes: int | str | None = None,
        dedup: bool | None = None,
        task_lock: bool | None = None,
        task_lock_timeout: float | None = None,
    ) -> None:
        settings = Settings.create(
            db_url,
            storage_dir,
            storage_options,
            checksum,
            lock_timeout,
            serializer,
            cache_dir=cache_dir,
            cache_max_bytes=cache_max_bytes,
            dedup=dedup,
            task_lock=task_lock,
            task_lock_timeout=task_lock_timeout,
        )
        _bind(self, settings)

    @classmethod
    def from_config(cls) -> ArtifactStore:
        """A store from options / environment / luigi.cfg / defaults (``settings.resolve``)."""
        return cls.from_settings(resolve_settings())

    @classmethod
    def from_settings(cls, s: Settings) -> ArtifactStore:
        """A store on resolved ``Settings`` (the one place settings become a store)."""
        store = cls.__new__(cls)
        _bind(store, s)
        return store

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "values": self.values}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.settings = state["settings"]
        self.values = state["values"]
        self.records = Records(self.settings, self.values, self)
        self.cache = ValueCache.for_settings(self.settings, self.values)

    def __repr__(self) -> str:
        return (
            f"ArtifactStore(db_url={mask_url(self.settings.database_url)!r}, "
            f"storage_dir={self.values.display_root!r})"
        )

    # -- writing ------------------------------------------------------------------

    def save(
        self,
        value: Any,
        name: str,
        *,
        task: TaskInfo | None = None,
        upstream: Iterable[Artifact] = (),
        serializer: str | None = None,
    ) -> Artifact:
        """Store ``value`` as the next version of ``name`` and return its record.

        ``task`` records the Luigi task that made it, ``upstream`` the exact
        artifact versions it was made from (lineage). ``serializer``: ``"auto"``
        (Parquet for data frames, ``.npy`` for arrays, cloudpickle for the rest),
        a serializer's name to force one, or None for the store's setting.
        """
        return saving.save(
            self.records,
            self.values,
            self.settings,
            value,
            check_name(name),
            task,
            upstream,
            serializer,
            self.cache,
        )

    def delete(self, name: str, version: int | str) -> int:
        """Delete one version, ``"latest"`` or ``"all"`` of ``name``, rows and values.

        Returns how many versions were deleted. Rows go first, in one
        transaction; then each value that no remaining row references.
        """
        name = check_name(name)
        spec = parse_version(version, allow_all=True)

        def drop(conn: Connection) -> tuple[int, list[str]]:
            # locked: a concurrent set_alias (FOR SHARE) either waits or is seen below
            q = located(spec).with_for_update()
            found = conn.execute(q, lookup_params(name, spec, None)).all()
            if not found:
                raise messages.not_found(conn, repr(self), name, spec, None)
            aliased = aliases.on_rows(conn, [row_id for row_id, _ in found])
            if aliased:
                raise messages.in_use(aliased)
            return len(found), delete_rows(conn, found)

        count, orphans = self.records.write(drop, f"deleting artifact {name!r}")
        remove_values(self.values, orphans)
        return count

    # -- aliases and garbage collection --------------------------------------------

    def set_alias(self, name: str, version: int | str | None, alias: str) -> Artifact:
        """Point ``name@alias`` at ``version`` (``"latest"`` resolved now); returns that version.

        Creating and moving are one upsert in one transaction; a version that
        does not exist is refused with ``ArtifactNotFoundError``.
        """
        name, alias = check_name(name), check_alias(alias)
        spec = parse_version(version)
        work = partial(alias_ops.move, store=repr(self), name=name, spec=spec, alias=alias)
        return self.records.artifact(self.records.write(work, f"setting alias {name}@{alias}"))

    def remove_alias(self, name: str, alias: str) -> int:
        """Remove ``name@alias``; returns the version it pointed at."""
        name, alias = check_name(name), check_alias(alias)
        work = partial(alias_ops.remove, store=repr(self), name=name, alias=alias)
        return self.records.write(work, f"removing alias {name}@{alias}")

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and the version it points at, sorted by alias."""
        name = check_name(name)
        return self.records.read(lambda c: aliases.of_name(c, name), f"reading aliases of {name!r}")

    def gc(
        self,
        keep_last: int | None = None,
        older_than: Duration | None = None,
        *,
        dry_run: bool = True,
        include_inputs: bool = False,
        grace: Duration | None = None,
    ) -> GcReport:
        """Delete old versions and orphan values; a dry run by default (see ``gc.collect``).

        Never the latest version, an aliased one, or (unless ``include_inputs``)
        an input of a kept artifact; never a value younger than ``grace`` (1 h).
        """
        return collect(
            self.records,
            self.values,
            keep_last=keep_last,
            older_than=older_than,
            dry_run=dry_run,
            include_inputs=include_inputs,
            grace=grace,
        )

    def _by_alias(self, ref: str, name: str, alias: str) -> Artifact | None:
        """The version ``name@alias`` names; None when no such alias but an artifact ``ref``."""
        work = partial(alias_ops.resolve, store=repr(self), ref=ref, name=name, alias=alias)
        row = self.records.read(work, f"reading artifact {ref!r}")
        return None if row is None else self.records.artifact(row)

    # -- reading ------------------------------------------------------------------

    def get(
        self, name: str, version: int | str | None = None, *, key: str | None = None
    ) -> Artifact:
        """The record of ``version`` of ``name`` (default latest); ``key`` picks one identity.

        ``name`` may be ``"name@alias"`` (see ``set_alias``), without a version or key.
        """
        name = check_name(name)
        ref = split_ref(name) if SEPARATOR in name else None
        if ref is not None:
            if (version is not None and version != LATEST) or key is not None:
                raise InvalidArgumentError(
                    f"{name!r} names one version through its alias:", advice=messages.ALIAS_ALONE
                )
            found = self._by_alias(name, *ref)
            if found is not None:
                return found
        spec = parse_version(version)
        doing = f"reading artifact {name!r}"
        records = self.records
        q = find(spec == LATEST, key is not None)
        row = records.first(q, doing, **lookup_params(name, spec, key))
        if row is None:  # explain, with what exists instead
            raise records.read(lambda c: messages.not_found(c, repr(self), name, spec, key), doing)
        return records.artifact(row)

    def latest_by_keys(self, name: str, keys: Iterable[str]) -> dict[str, Artifact]:
        """The latest version of ``name`` for each identity key in ``keys`` that has one.

        What ``get(name, key=k)`` returns for each key, in one query per
        ``db.queries.chunks.PER_QUERY`` keys: a task loading hundreds of inputs
        reads their records at once. Keys without a version are left out
        (``get`` explains). Used by ``ArtifactTaskMixin``.
        """
        return self.records.latest_by_keys(check_name(name), keys)

    def exists(
        self, name: str, version: int | str | None = None, *, key: str | None = None
    ) -> bool:
        """Whether such an artifact exists: one indexed query, no storage access."""
        name = check_name(name)
        spec = parse_version(version)
        found = self.records.first(
            probe(spec == LATEST, key is not None),
            f"checking artifact {name!r}",
            **lookup_params(name, spec, key),
        )
        return found is not None

    def load(
        self,
        name: str,
        version: int | str | None = LATEST,
        *,
        key: str | None = None,
        columns: Sequence[str] | None = None,
    ) -> Any:
        """The value of ``version`` of ``name`` (default: latest).

        ``columns``: only these columns of a Parquet value, read as their byte
        ranges (see ``load_artifact``).
        """
        return self.load_artifact(self.get(name, version, key=key), columns)

    def load_artifact(self, artifact: Artifact, columns: Sequence[str] | None = None) -> Any:
        """Read, verify (digest, size) and only then parse or unpickle a value.

        What is parsed is the very buffer that was hashed: it is never read
        again from storage after the check. ``columns`` (Parquet values only)
        reads just the footer and those columns: the whole-file digest cannot
        be checked without reading the whole file, so the file's size and each
        page's CRC are checked instead.
        """
        if columns is not None:
            return self._stored(
                artifact, lambda: value_io.read_columns(self.values, artifact, columns, self.cache)
            )
        return value_io.load(artifact, self.read_bytes(artifact))

    def read_bytes(self, artifact: Artifact) -> memoryview:
        """The stored file of ``artifact`` as it is, verified against its size and digest."""
        return self._stored(artifact, lambda: value_io.read(self.values, artifact, self.cache))

    def preview(self, artifact: Artifact) -> dict[str, Any]:
        """What the value looks like, read without loading it: never unpickles (``value_io``)."""
        return value_io.preview(self.values, artifact)

    def _stored(self, artifact: Artifact, read: Callable[[], T]) -> T:
        """``read()``, explaining a storage failure by a version deleted meanwhile."""
        try:
            return read()
        except StorageError:
            if not self.records.still_stored(artifact):
                raise messages.deleted_meanwhile(artifact) from None
            raise

    def versions(self, name: str) -> ArtifactList:
        """Every version of ``name``, oldest first (empty if the name has none)."""
        name = check_name(name)
        return self.records.rows(versions_of(name), f"listing versions of {name!r}")

    def list(
        self, pattern: str | None = None, *, limit: int | None = None, offset: int = 0
    ) -> ArtifactList:
        """The latest version of every name matching ``pattern``, sorted by name.

        ``pattern`` is a case-sensitive glob (``fnmatch``: ``*``, ``?``, ``[…]``)
        matched by the database, within the limits of ``globs`` (an
        ``InvalidArgumentError`` otherwise); ``limit`` and ``offset`` page through the
        result in the same one query (``iter_list`` pages without offsets).
        """
        if limit is not None:
            limit = check_count(limit, "limit")
        offset = check_count(offset, "offset")
        q = latest_per_name(pattern, limit=limit, offset=offset)
        return self.records.rows(q, "listing artifacts")

    def iter_list(self, pattern: str | None = None, *, page_size: int = 1000) -> Iterator[Artifact]:
        """Like ``list`` but lazily, one keyset-paged query per ``page_size`` names.

        For callers (the CLI) that must not hold 100k records at once; each page
        is its own short read, so a name saved meanwhile may or may not appear.
        """
        page_size = check_count(page_size, "page_size", minimum=1)
        after: str | None = None
        while True:
            q = latest_per_name(pattern, after=after, limit=page_size)
            page = self.records.rows(q, "listing artifacts")
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].name

    def find(self, name: str, **params: Any) -> ArtifactList:
        """Versions of ``name`` whose recorded Luigi task parameters match ``params``, oldest first.

        A value is compared by the string Luigi recorded (see ``store.params``):
        ``str`` as is, ``int``/``float``/``bool`` by ``str()``, ``date`` by
        ``isoformat()``, ``dict``/``list`` as JSON structures.
        """
        name = check_name(name)
        wanted = matchers(params)
        found = self.records.rows(with_params_of(name), f"finding versions of {name!r}")
        return [a for a in found if matches(a.params, wanted)]

    def latest_version(self, name: str) -> int:
        """The highest existing version of ``name``, or -1 when it has none."""
        name = check_name(name)
        found = self.records.first(LATEST_VERSION, f"reading artifact {name!r}", name=name)
        return -1 if found is None or found[0] is None else int(found[0])

    def upstream(self, name: str, version: int | str | None = LATEST) -> ArtifactList:
        """The exact artifact versions ``name`` v``version`` was made from."""
        return self._lineage(name, version, upstream=True)

    def downstream(self, name: str, version: int | str | None = LATEST) -> ArtifactList:
        """The artifact versions made from ``name`` v``version``."""
        return self._lineage(name, version, upstream=False)

    def _lineage(self, name: str, version: int | str | None, *, upstream: bool) -> ArtifactList:
        name = check_name(name)
        spec = parse_version(version)
        records = self.records

        def related(conn: Connection) -> ArtifactList:
            own_id = conn.scalar(find_id(spec == LATEST), lookup_params(name, spec, None))
            if own_id is None:
                raise messages.not_found(conn, repr(self), name, spec, None)
            return records.artifacts(conn.execute(lineage.related(own_id, upstream=upstream)))

        return records.read(related, f"reading lineage of {name!r}")

    def task_runs(self, name: str, version: int | str | None = LATEST) -> TaskRunList:
        """Luigi's recorded runs of the task that saved ``name`` v``version``, oldest first."""
        task_id = self.get(name, version).task_id
        return self.records.read(
            lambda c: runs_of_task(c, task_id), f"reading the runs of {name!r}"
        )

    def artifacts_of_run(self, run: TaskRun) -> ArtifactList:
        """The artifacts ``run`` saved: its task id, made while it ran (``db.queries.history``)."""
        records = self.records
        return records.read(
            lambda c: records.artifacts(c.execute(artifacts_of_run_query(c, run))),
            f"reading the artifacts of run {run.record_id}",
        )


def _bind(store: ArtifactStore, settings: Settings) -> None:
    """Give ``store`` its settings and the layers built from them (both constructors)."""
    store.settings = settings
    store.values = ValueStorage(settings.storage_dir, settings.storage_options)
    store.cache = ValueCache.for_settings(settings, store.values)
    store.records = Records(settings, store.values, store)
