"""``ArtifactStore``: versioned values, metadata in SQL, bytes in fsspec storage.

The store joins the pieces and owns the order of operations that keeps data
safe: a value is completely written and hashed *before* its row is committed
(so a crash leaves at worst an unreferenced file, never a row without a value),
and rows are deleted *before* their values. The store never imports Luigi.

Every database access is SQLAlchemy Core with statements built once per
process: a Luigi pipeline calls ``exists``, ``get`` and ``save`` once or twice
per task, and an ORM unit of work would cost more than the task's own I/O.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import os
import platform
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, delete, func, select

from .. import globs
from ..db import executor as fast
from ..db.engine import get_engine, run
from ..db.queries import aliases
from ..db.queries.history import artifacts_of_run_query, runs_of_task
from ..db.queries.versions import allocate_version
from ..db.schema import ARTIFACTS, LINEAGE
from ..db.setup import ensure_ready
from ..errors import (
    ArtifactInUseError,
    ArtifactNotFoundError,
    ChecksumMismatchError,
    CommitOutcomeUnknownError,
    InvalidArgumentError,
    StorageError,
)
from ..model import Artifact, GcReport, TaskInfo, TaskRun
from ..names import (
    ALL,
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
from ..storage import ValueStorage, layout
from ..values import progress
from ..values.digests import HashingWriter, algorithm_of, read_hashed
from ..values.serializers import DEFAULT_SERIALIZER, get_serializer
from .gc import Duration, collect

log = logging.getLogger(__name__)

ArtifactList = list[Artifact]
TaskRunList = list[TaskRun]

_A = ARTIFACTS.c
_L = LINEAGE.c
_PYTHON_VERSION = platform.python_version()


class ArtifactStore:
    """Save, find, load and delete versioned artifacts.

    Pickles as settings only: engines and filesystems are looked up per
    process, so a store can be sent to Luigi workers and used after ``fork``.
    """

    def __init__(
        self,
        db_url: str | Any,
        storage_dir: str | Any,
        storage_options: dict[str, Any] | None = None,
        *,
        checksum: str | None = None,
        lock_timeout: float | None = None,
    ) -> None:
        self.settings = Settings.create(
            db_url, storage_dir, storage_options, checksum, lock_timeout
        )
        self._storage = ValueStorage(self.settings.storage_dir, self.settings.storage_options)
        self._process: tuple[int, Engine] | None = None

    @classmethod
    def from_config(cls) -> ArtifactStore:
        """A store from ``options`` / environment / luigi.cfg / defaults (see ``config``)."""
        return cls.from_settings(resolve_settings())

    @classmethod
    def from_settings(cls, s: Settings) -> ArtifactStore:
        """A store on resolved ``Settings`` (the one place settings become a store)."""
        return cls(
            s.database_url,
            s.storage_dir,
            s.storage_options,
            checksum=s.checksum,
            lock_timeout=s.lock_timeout,
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "_storage": self._storage}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._process = None

    def __repr__(self) -> str:
        return (
            f"ArtifactStore(db_url={mask_url(self.settings.database_url)!r}, "
            f"storage_dir={self._storage.display_root!r})"
        )

    # -- plumbing ---------------------------------------------------------------

    def _engine(self) -> Engine:
        """This process's engine, the schema checked once per process."""
        process = self._process
        if process is None or process[0] != os.getpid():
            url = self.settings.database_url
            engine = get_engine(url, self.settings.lock_timeout)
            ensure_ready(url, self._storage.root_uri, engine)
            process = (os.getpid(), engine)
            self._process = process
        return process[1]

    def _run(self, work: Any, *, write: bool, doing: str) -> Any:
        url = self.settings.database_url
        return run(url, work, write=write, doing=doing, engine=self._engine())

    def _hot(self, work: Any, *, write: bool, doing: str) -> Any:
        """Run hot-path ``work(executor)`` (see ``db.fast``)."""
        url = self.settings.database_url
        return fast.run(url, self._engine(), work, write=write, doing=doing)

    def _first(self, statement: Select[Any], doing: str, **params: Any) -> Any:
        return self._hot(lambda tx: tx.first(statement, params), write=False, doing=doing)

    def _artifact(self, row: Any) -> Artifact:
        """The public record of a row of ``ll_artifacts``."""
        created = row.created_at
        if created.tzinfo is None:  # SQLite keeps no zone; we always write UTC
            created = created.replace(tzinfo=timezone.utc)
        else:  # PostgreSQL answers in the session's time zone
            created = created.astimezone(timezone.utc)
        return Artifact(
            name=row.name,
            version=row.version,
            created_at=created,
            uri=self._storage.uri(row.location),
            location=row.location,
            serializer=row.serializer,
            size_bytes=row.size_bytes,
            digest=row.digest,
            python_version=row.python_version,
            task_family=row.task_family,
            task_id=row.task_id,
            identity_key=row.identity_key,
            params=row.params,
            _store=self,
        )

    def _not_found(
        self, conn: Connection, name: str, version: int | str, key: str | None
    ) -> ArtifactNotFoundError:
        """Build a helpful error: which versions exist, or which names look alike."""
        versions = list(
            conn.scalars(select(_A.version).where(_A.name == name).order_by(_A.version))
        )
        if not versions:
            names = list(conn.scalars(select(_A.name).distinct()))
            close = difflib.get_close_matches(name, names, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            return ArtifactNotFoundError(
                f"No artifact named {name!r} in {self!r}.{hint} `store.list()` shows every name."
            )
        if key is not None:
            return ArtifactNotFoundError(
                f"Artifact {name!r} has no version with identity key {key[:12]}… "
                f"(versions {_span(versions)} exist for other parameters or code versions)."
            )
        return ArtifactNotFoundError(
            f"Artifact {name!r} has no version {version}; it has versions {_span(versions)} "
            f"(latest {versions[-1]})."
        )

    # -- writing ------------------------------------------------------------------

    def save(
        self,
        value: Any,
        name: str,
        *,
        task: TaskInfo | None = None,
        upstream: Iterable[Artifact] = (),
    ) -> Artifact:
        """Store ``value`` as the next version of ``name`` and return its record.

        ``task`` records the Luigi task that made it, ``upstream`` the exact
        artifact versions it was made from (lineage).
        """
        name = check_name(name)
        parents: dict[tuple[str, int], None] = {}
        for p in upstream:
            if not isinstance(p, Artifact):
                raise InvalidArgumentError(f"upstream must hold Artifact records, got {p!r}.")
            parents[(p.name, p.version)] = None
        engine = self._engine()  # a wrong database fails before any write
        dialect = engine.dialect.name
        serializer = get_serializer(DEFAULT_SERIALIZER)
        location = layout.new_location(name)
        with self._storage.open_write(location) as handle:
            shown = progress.start(f"saving {name}", None)
            writer = HashingWriter(handle, self.settings.checksum, shown)
            try:
                serializer.dump(value, writer)  # type: ignore[arg-type]
            finally:
                digest = writer.finish()
                if shown is not None:
                    shown.close()
        row: dict[str, Any] = {
            "name": name,
            "created_at": datetime.now(timezone.utc),
            "location": location,
            "serializer": serializer.name,
            "size_bytes": writer.size,
            "digest": digest,
            "python_version": _PYTHON_VERSION,
            "task_family": task.family if task else None,
            "task_id": task.task_id if task else None,
            "identity_key": task.identity_key if task else None,
            "params": dict(task.params) if task else None,
        }

        def publish(tx: fast.Executor) -> None:
            row["version"] = allocate_version(tx, dialect, name)
            child_id = tx.scalar(_INSERT_ARTIFACT, row)
            if parents:
                _link(tx, child_id, list(parents), name)

        try:
            url = self.settings.database_url
            fast.run(url, engine, publish, write=True, doing=f"saving artifact {name!r}")
        except CommitOutcomeUnknownError:
            # the row may be committed: its value must stay (at worst an orphan)
            log.warning("kept the value %s of a save whose commit was cut off", location)
            raise
        except BaseException:
            self._discard_value(location)
            raise
        log.debug("saved %s v%d (%d bytes) at %s", name, row["version"], writer.size, location)
        return self._artifact(_RowView(row))

    def _discard_value(self, location: str) -> None:
        try:
            self._storage.delete(location)
        except Exception:  # the row was never committed, so this is only an orphan
            log.warning("could not remove unpublished value %s", self._storage.uri(location))

    def delete(self, name: str, version: int | str) -> int:
        """Delete one version, ``"latest"`` or ``"all"`` of ``name``, rows and values.

        Returns how many versions were deleted. Rows go first, in one
        transaction; then each value that no remaining row references.
        """
        name = check_name(name)
        spec = parse_version(version, allow_all=True)

        def drop(conn: Connection) -> tuple[int, list[str]]:
            if spec == ALL:
                q = select(_A.id, _A.location).where(_A.name == name)
                params: dict[str, Any] = {}
            else:
                q = _find(spec == LATEST, False).with_only_columns(_A.id, _A.location)
                params = {"name": name, "version": spec}
            # locked: a concurrent set_alias (FOR SHARE) either waits or is seen below
            found = [(row_id, loc) for row_id, loc in conn.execute(q.with_for_update(), params)]
            if not found:
                raise self._not_found(conn, name, spec, None)
            ids = [row_id for row_id, _ in found]
            aliased = aliases.on_rows(conn, ids)
            if aliased:
                raise _in_use(aliased)
            conn.execute(delete(LINEAGE).where(_L.child_id.in_(ids)))
            conn.execute(delete(LINEAGE).where(_L.parent_id.in_(ids)))
            conn.execute(delete(ARTIFACTS).where(_A.id.in_(ids)))
            locations = sorted({loc for _, loc in found})
            still_used = set(conn.scalars(select(_A.location).where(_A.location.in_(locations))))
            return len(found), [loc for loc in locations if loc not in still_used]

        count, orphans = self._run(drop, write=True, doing=f"deleting artifact {name!r}")
        for location in orphans:
            try:
                self._storage.delete(location)
            except Exception as exc:  # the rows are gone; the file is only an orphan now
                log.warning("deleted %r but could not remove its value: %s", name, exc)
        return int(count)

    # -- aliases and garbage collection --------------------------------------------

    def set_alias(self, name: str, version: int | str | None, alias: str) -> Artifact:
        """Point ``name@alias`` at ``version`` (``"latest"`` resolved now); returns that version.

        Creating and moving are one upsert in one transaction; a version that
        does not exist is refused with ``ArtifactNotFoundError``.
        """
        name, alias = check_name(name), check_alias(alias)
        spec = parse_version(version)

        def move(conn: Connection) -> Artifact:
            # FOR SHARE: a concurrent delete of this version waits for us, then sees the alias
            q = _find(spec == LATEST, False).with_for_update(read=True)
            row = conn.execute(q, _params(name, spec, None)).first()
            if row is None:
                raise self._not_found(conn, name, spec, None)
            aliases.upsert(conn, name, alias, row.version)
            return self._artifact(row)

        result: Artifact = self._run(move, write=True, doing=f"setting alias {name}@{alias}")
        return result

    def remove_alias(self, name: str, alias: str) -> int:
        """Remove ``name@alias``; returns the version it pointed at."""
        name, alias = check_name(name), check_alias(alias)

        def drop(conn: Connection) -> int:
            version = aliases.remove(conn, name, alias)
            if version is None:
                raise self._no_alias(conn, name, alias)
            return version

        result: int = self._run(drop, write=True, doing=f"removing alias {name}@{alias}")
        return result

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and the version it points at, sorted by alias."""
        name = check_name(name)
        result: dict[str, int] = self._run(
            lambda c: aliases.of_name(c, name), write=False, doing=f"reading aliases of {name!r}"
        )
        return result

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
            self,
            keep_last=keep_last,
            older_than=older_than,
            dry_run=dry_run,
            include_inputs=include_inputs,
            grace=grace,
        )

    def _by_alias(self, ref: str, name: str, alias: str) -> Artifact | None:
        """The version ``name@alias`` names; None when no such alias but an artifact ``ref``."""

        def find(conn: Connection) -> Any:
            row = conn.execute(aliases.RESOLVE, {"name": name, "alias": alias}).first()
            if row is not None:
                return row
            if conn.scalar(_probe(True, False), _params(ref, LATEST, None)) is not None:
                return None  # a name that merely contains '@'
            raise self._no_alias(conn, name, alias)

        row = self._run(find, write=False, doing=f"reading artifact {ref!r}")
        return None if row is None else self._artifact(row)

    def _no_alias(self, conn: Connection, name: str, alias: str) -> ArtifactNotFoundError:
        known = aliases.of_name(conn, name)
        if not known:
            if conn.scalar(_probe(True, False), _params(name, LATEST, None)) is None:
                return self._not_found(conn, name, LATEST, None)
            return ArtifactNotFoundError(
                f"Artifact {name!r} has no aliases; set one with "
                f"store.set_alias({name!r}, <version>, {alias!r})."
            )
        close = difflib.get_close_matches(alias, list(known), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(f"{a} (v{v})" for a, v in known.items())
        return ArtifactNotFoundError(
            f"Artifact {name!r} has no alias {alias!r}.{hint} Its aliases: {listed}."
        )

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
                    f"{name!r} names one version through its alias: pass no version or key."
                )
            found = self._by_alias(name, *ref)
            if found is not None:
                return found
        spec = parse_version(version)
        doing = f"reading artifact {name!r}"
        row = self._first(_find(spec == LATEST, key is not None), doing, **_params(name, spec, key))
        if row is None:

            def explain(conn: Connection) -> ArtifactNotFoundError:
                return self._not_found(conn, name, spec, key)

            raise self._run(explain, write=False, doing=doing)
        return self._artifact(row)

    def _latest_by_keys(self, name: str, keys: Iterable[str]) -> dict[str, Artifact]:
        """The latest version of ``name`` for each identity key in ``keys`` that has one.

        What ``get(name, key=k)`` returns for each key, in one query per
        ``_KEYS_PER_QUERY`` keys: a task loading hundreds of inputs reads their
        records at once. Keys without a version are left out (``get`` explains).
        """
        name = check_name(name)
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Artifact] = {}
        for start in range(0, len(wanted), _KEYS_PER_QUERY):
            part = wanted[start : start + _KEYS_PER_QUERY]
            rows = self._run(
                lambda c, part=part: list(c.execute(_LATEST_BY_KEYS, {"name": name, "keys": part})),
                write=False,
                doing=f"reading artifact {name!r}",
            )
            for row in rows:
                found[row.identity_key] = self._artifact(row)
        return found

    def exists(
        self, name: str, version: int | str | None = None, *, key: str | None = None
    ) -> bool:
        """Whether such an artifact exists: one indexed query, no storage access."""
        name = check_name(name)
        spec = parse_version(version)
        found = self._first(
            _probe(spec == LATEST, key is not None),
            f"checking artifact {name!r}",
            **_params(name, spec, key),
        )
        return found is not None

    def load(self, name: str, version: int | str | None = LATEST, *, key: str | None = None) -> Any:
        """The value of ``version`` of ``name`` (default: latest)."""
        return self.load_artifact(self.get(name, version, key=key))

    def load_artifact(self, artifact: Artifact) -> Any:
        """Read, verify (digest, size) and only then unpickle a value.

        What is unpickled is the very buffer that was hashed: it is never read
        again from storage after the check.
        """
        algorithm = algorithm_of(artifact.digest)
        shown = progress.start(f"loading {artifact.name} v{artifact.version}", artifact.size_bytes)
        try:
            with self._storage.open_read(artifact.location) as handle:
                data, digest, actual = read_hashed(handle, artifact.size_bytes, algorithm, shown)
        except StorageError:
            if not self._still_stored(artifact):
                raise ArtifactNotFoundError(
                    f"Artifact {artifact.name!r} v{artifact.version} was deleted after it was "
                    "looked up (by another process or call), so nothing was loaded. Look it "
                    "up again to load what exists now."
                ) from None
            raise
        finally:
            if shown is not None:
                shown.close()
        if actual != artifact.size_bytes or digest != artifact.digest:
            raise ChecksumMismatchError(
                f"Artifact {artifact.name!r} v{artifact.version} at {artifact.uri} is corrupt: "
                f"expected {artifact.size_bytes} bytes with digest {artifact.digest[:23]}…, "
                f"found {_describe_size(actual, artifact.size_bytes)} bytes with digest "
                f"{digest[:23]}…. Nothing was unpickled. Restore the file from a backup, or "
                "delete this version and rerun the task that made it."
            )
        return get_serializer(artifact.serializer).load(data)

    def _still_stored(self, artifact: Artifact) -> bool:
        """Whether ``artifact``'s row still exists with its value (a failed read asks)."""
        row = self._first(
            _find(False, False),
            f"checking artifact {artifact.name!r}",
            **_params(artifact.name, artifact.version, None),
        )
        return row is not None and row.location == artifact.location

    def versions(self, name: str) -> ArtifactList:
        """Every version of ``name``, oldest first (empty if the name has none)."""
        name = check_name(name)
        q = select(ARTIFACTS).where(_A.name == name).order_by(_A.version)
        return self._rows(q, f"listing versions of {name!r}")

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
        return self._rows(_latest_query(pattern, None, limit, offset), "listing artifacts")

    def iter_list(self, pattern: str | None = None, *, page_size: int = 1000) -> Iterator[Artifact]:
        """Like ``list`` but lazily, one keyset-paged query per ``page_size`` names.

        For callers (the CLI) that must not hold 100k records at once; each page
        is its own short read, so a name saved meanwhile may or may not appear.
        """
        page_size = check_count(page_size, "page_size", minimum=1)
        after: str | None = None
        while True:
            page = self._rows(_latest_query(pattern, after, page_size, 0), "listing artifacts")
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].name

    def find(self, name: str, **params: Any) -> ArtifactList:
        """Versions of ``name`` whose recorded Luigi task parameters match ``params``, oldest first.

        Parameters are recorded as Luigi serializes them (strings), so a value is
        compared by its serialized form: ``str`` as is, ``int``/``float``/``bool``
        by ``str()``, ``date`` by ``isoformat()``, ``dict``/``list`` as JSON
        structures. Filtering happens here, after a query by name, because JSON
        equality differs between SQLite and PostgreSQL.
        """
        name = check_name(name)
        wanted = {key: _param_matcher(key, value) for key, value in params.items()}
        q = select(ARTIFACTS).where(_A.name == name, _A.params.is_not(None)).order_by(_A.version)
        found = self._rows(q, f"finding versions of {name!r}")
        return [
            a
            for a in found
            if a.params is not None
            and all(key in a.params and match(a.params[key]) for key, match in wanted.items())
        ]

    def latest_version(self, name: str) -> int:
        """The highest existing version of ``name``, or -1 when it has none."""
        name = check_name(name)
        found = self._first(_LATEST_VERSION, f"reading artifact {name!r}", name=name)
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
        # upstream: we are the child and want the parents; downstream the reverse
        ours, theirs = (_L.child_id, _L.parent_id) if upstream else (_L.parent_id, _L.child_id)

        def related(conn: Connection) -> ArtifactList:
            own = _find(spec == LATEST, False).with_only_columns(_A.id)
            own_id = conn.scalar(own, _params(name, spec, None))
            if own_id is None:
                raise self._not_found(conn, name, spec, None)
            q = (
                select(ARTIFACTS)
                .join(LINEAGE, theirs == _A.id)
                .where(ours == own_id)
                .order_by(_A.name, _A.version)
            )
            return [self._artifact(r) for r in conn.execute(q)]

        result: ArtifactList = self._run(related, write=False, doing=f"reading lineage of {name!r}")
        return result

    def task_runs(self, name: str, version: int | str | None = LATEST) -> TaskRunList:
        """Luigi's recorded runs of the task that saved ``name`` v``version``, oldest first."""
        task_id = self.get(name, version).task_id
        runs: TaskRunList = self._run(
            lambda c: runs_of_task(c, task_id), write=False, doing=f"reading the runs of {name!r}"
        )
        return runs

    def artifacts_of_run(self, run: TaskRun) -> ArtifactList:
        """The artifacts ``run`` saved: its task_id, created while it ran (see ``db.runs``)."""
        result: ArtifactList = self._run(
            lambda c: [self._artifact(r) for r in c.execute(artifacts_of_run_query(c, run))],
            write=False,
            doing=f"reading the artifacts of run {run.record_id}",
        )
        return result

    def _rows(self, q: Select[Any], doing: str) -> ArtifactList:
        result: ArtifactList = self._run(
            lambda c: [self._artifact(r) for r in c.execute(q)], write=False, doing=doing
        )
        return result


class _RowView:
    """Attribute access to a row dict, so a just-saved row becomes an ``Artifact`` as read."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.__dict__.update(row)


_INSERT_ARTIFACT = (
    ARTIFACTS.insert()
    .values({c.name: bindparam(c.name) for c in ARTIFACTS.c if c is not _A.id})
    .returning(_A.id)
)
_INSERT_LINEAGE = LINEAGE.insert().values(
    child_id=bindparam("child_id"), parent_id=bindparam("parent_id")
)
_PARENT_ID = select(_A.id).where(_A.name == bindparam("name"), _A.version == bindparam("version"))
_LATEST_VERSION = select(func.max(_A.version)).where(_A.name == bindparam("name"))
#: identity keys per query of ``_latest_by_keys`` (well inside every database's bind limit)
_KEYS_PER_QUERY = 500
_BY_KEY = (
    select(_A.identity_key, func.max(_A.version).label("v"))
    .where(_A.name == bindparam("name"), _A.identity_key.in_(bindparam("keys", expanding=True)))
    .group_by(_A.identity_key)
    .subquery()
)
#: the latest row per identity key: the index on (identity_key, name, version) finds each
#: key's latest version, the unique (name, version) index its row
_LATEST_BY_KEYS = select(ARTIFACTS).join(
    _BY_KEY, (_A.name == bindparam("name")) & (_A.version == _BY_KEY.c.v)
)


def _link(tx: fast.Executor, child_id: int, parents: list[tuple[str, int]], child: str) -> None:
    """Record lineage edges from ``child_id`` to each (name, version) in ``parents``."""
    edges = []
    for name, version in parents:  # one unique-index seek each
        parent_id = tx.scalar(_PARENT_ID, {"name": name, "version": version})
        if parent_id is None:
            raise ArtifactNotFoundError(
                f"Upstream artifact {name!r} v{version} was deleted while {child!r} was being "
                "saved; rerun the upstream task."
            )
        edges.append({"child_id": child_id, "parent_id": parent_id})
    tx.many(_INSERT_LINEAGE, edges)


def _latest_query(
    pattern: str | None, after: str | None, limit: int | None, offset: int
) -> Select[Any]:
    """The latest row of each name (matching ``pattern``, after ``after``), by name.

    The page is cut inside the grouping, so the database can walk the
    ``(name, version)`` index and stop after ``limit`` names.
    """
    names = select(_A.name, func.max(_A.version).label("v"))
    if pattern is not None:
        names = names.where(globs.matches(_A.name, pattern))
    if after is not None:
        names = names.where(_A.name > after)
    names = names.group_by(_A.name).order_by(_A.name).offset(offset or None).limit(limit)
    latest = names.subquery()
    return (
        select(ARTIFACTS)
        .join(latest, (_A.name == latest.c.name) & (_A.version == latest.c.v))
        .order_by(_A.name)
    )


def _param_matcher(key: str, value: Any) -> Callable[[Any], bool]:
    """A test of a recorded (Luigi-serialized) parameter against ``value``."""
    if isinstance(value, (dict, list, tuple)):
        expected = json.loads(json.dumps(value))

        def same_structure(recorded: Any) -> bool:
            try:
                parsed = json.loads(recorded) if isinstance(recorded, str) else recorded
            except ValueError:
                return False
            return bool(parsed == expected)

        return same_structure
    if isinstance(value, (date, datetime)):
        text = value.isoformat()
    elif isinstance(value, (str, int, float)):  # bool is an int: str(True) == "True"
        text = str(value)
    else:
        raise InvalidArgumentError(
            f"Cannot compare parameter {key}={value!r}: pass a str, int, float, bool, date, "
            "dict or list (or the string Luigi's Parameter.serialize gives)."
        )
    return lambda recorded: recorded == text or str(recorded) == text


def _in_use(aliased: list[tuple[str, str, int]]) -> ArtifactInUseError:
    pointers = ", ".join(f"{n}@{a} -> v{v}" for n, a, v in aliased)
    name, alias, _ = aliased[0]
    return ArtifactInUseError(
        f"Refusing to delete: aliases point at it ({pointers}). Move the alias to another "
        f"version (store.set_alias({name!r}, <version>, {alias!r})) or remove it "
        f"(store.remove_alias({name!r}, {alias!r})), then delete."
    )


def _params(name: str, spec: int | str, key: str | None) -> dict[str, Any]:
    return {"name": name, "version": spec, "key": key}


@functools.cache
def _find(latest: bool, keyed: bool) -> Select[Any]:
    """Prebuilt lookups of one artifact row (bound parameters name, version, key)."""
    q = _where(select(ARTIFACTS), latest, keyed)
    return q.order_by(_A.version.desc()).limit(1) if latest else q


@functools.cache
def _probe(latest: bool, keyed: bool) -> Select[Any]:
    """Prebuilt existence queries (bound parameters name, version, key), one per shape."""
    return _where(select(_A.id), latest, keyed).limit(1)


def _where(q: Select[Any], latest: bool, keyed: bool) -> Select[Any]:
    q = q.where(_A.name == bindparam("name"))
    if keyed:
        q = q.where(_A.identity_key == bindparam("key"))
    return q if latest else q.where(_A.version == bindparam("version"))


def _span(versions: Iterable[int]) -> str:
    vs = list(versions)
    return ", ".join(map(str, vs)) if len(vs) <= 10 else f"{vs[0]}…{vs[-1]} ({len(vs)} in all)"


def _describe_size(actual: int, expected: int) -> str:
    return f"more than {expected}" if actual > expected else str(actual)
