"""``ArtifactStore``: versioned values, metadata in SQL, bytes in fsspec storage.

The store joins the pieces and owns the order of operations that keeps data
safe: a value is completely written and hashed *before* its row is committed
(so a crash leaves at worst an unreferenced file, never a row without a value),
and rows are deleted *before* their values. The store never imports Luigi.
"""

from __future__ import annotations

import difflib
import functools
import logging
import platform
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select
from sqlalchemy.orm import Session

from .artifact import Artifact, TaskInfo
from .config import Settings, resolve_settings
from .db.engine import scalar, transact
from .db.schema import ArtifactRow, LineageRow
from .db.setup import ensure_ready
from .db.versions import allocate_version
from .errors import ArtifactNotFoundError, ChecksumMismatchError, InvalidArgumentError
from .hashing import HashingWriter, read_hashed
from .serialization import DEFAULT_SERIALIZER, get_serializer
from .storage import ValueStorage
from .urls import mask_url
from .versions import ALL, LATEST, check_name, parse_version

log = logging.getLogger(__name__)

ArtifactList = list[Artifact]


class ArtifactStore:
    """Save, find, load and delete versioned artifacts.

    Holds only settings: engines and filesystems are looked up per process, so
    a store can be pickled into Luigi workers and used after ``fork``.
    """

    def __init__(
        self,
        db_url: str | Any,
        storage_dir: str | Any,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = Settings.create(db_url, storage_dir, storage_options)
        self._storage = ValueStorage(self.settings.storage_dir, self.settings.storage_options)

    @classmethod
    def from_config(cls) -> ArtifactStore:
        """A store from ``options`` / environment / luigi.cfg / defaults (see ``config``)."""
        s = resolve_settings()
        return cls(s.database_url, s.storage_dir, s.storage_options)

    def __repr__(self) -> str:
        return (
            f"ArtifactStore(db_url={mask_url(self.settings.database_url)!r}, "
            f"storage_dir={self._storage.root_uri!r})"
        )

    # -- plumbing ---------------------------------------------------------------

    def _tx(self, work: Any, *, write: bool, doing: str) -> Any:
        url = self.settings.database_url
        ensure_ready(url, self._storage.root_uri)
        return transact(url, work, write=write, doing=doing)

    def _scalar(self, statement: Select[Any], doing: str, **params: Any) -> Any:
        url = self.settings.database_url
        ensure_ready(url, self._storage.root_uri)
        return scalar(url, statement, params, doing=doing)

    def _artifact(self, row: ArtifactRow) -> Artifact:
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
            sha256=row.sha256,
            python_version=row.python_version,
            task_family=row.task_family,
            task_id=row.task_id,
            identity_key=row.identity_key,
            params=row.params,
            _store=self,
        )

    def _select(self, name: str, version: int | str, key: str | None) -> Select[Any]:
        q = select(ArtifactRow).where(ArtifactRow.name == name)
        if key is not None:
            q = q.where(ArtifactRow.identity_key == key)
        if version == LATEST:
            return q.order_by(ArtifactRow.version.desc()).limit(1)
        return q.where(ArtifactRow.version == version)

    def _not_found(
        self, session: Session, name: str, version: int | str, key: str | None
    ) -> ArtifactNotFoundError:
        """Build a helpful error: which versions exist, or which names look alike."""
        versions = session.scalars(
            select(ArtifactRow.version)
            .where(ArtifactRow.name == name)
            .order_by(ArtifactRow.version)
        ).all()
        if not versions:
            names = session.scalars(select(ArtifactRow.name).distinct()).all()
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
        parents = tuple(upstream)
        for p in parents:
            if not isinstance(p, Artifact):
                raise InvalidArgumentError(f"upstream must hold Artifact records, got {p!r}.")
        serializer = get_serializer(DEFAULT_SERIALIZER)
        location = f"{_safe_dirname(name)}/{uuid.uuid4().hex}.pkl"
        with self._storage.open_write(location) as handle:
            writer = HashingWriter(handle)
            try:
                serializer.dump(value, writer)  # type: ignore[arg-type]
            finally:
                sha256 = writer.finish()
        row = ArtifactRow(
            name=name,
            created_at=datetime.now(timezone.utc),
            location=location,
            serializer=serializer.name,
            size_bytes=writer.size,
            sha256=sha256,
            python_version=platform.python_version(),
            task_family=task.family if task else None,
            task_id=task.task_id if task else None,
            identity_key=task.identity_key if task else None,
            params=dict(task.params) if task else None,
        )

        def publish(session: Session) -> Artifact:
            row.version = allocate_version(session, name)
            session.add(row)
            session.flush()
            for parent in parents:
                parent_id = session.scalar(
                    select(ArtifactRow.id).where(
                        ArtifactRow.name == parent.name, ArtifactRow.version == parent.version
                    )
                )
                if parent_id is None:
                    raise ArtifactNotFoundError(
                        f"Upstream artifact {parent.name!r} v{parent.version} was deleted while "
                        f"{name!r} was being saved; rerun the upstream task."
                    )
                session.add(LineageRow(child_id=row.id, parent_id=parent_id))
            return self._artifact(row)

        try:
            artifact: Artifact = self._tx(publish, write=True, doing=f"saving artifact {name!r}")
        except BaseException:
            self._discard_value(location)
            raise
        log.debug(
            "saved %s v%d (%d bytes) at %s",
            name,
            artifact.version,
            artifact.size_bytes,
            artifact.uri,
        )
        return artifact

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

        def drop(session: Session) -> tuple[int, list[str]]:
            if spec == ALL:
                q = select(ArtifactRow.id, ArtifactRow.location).where(ArtifactRow.name == name)
            else:
                q = self._select(name, spec, None).with_only_columns(
                    ArtifactRow.id, ArtifactRow.location
                )
            found = [(row_id, loc) for row_id, loc in session.execute(q)]
            if not found:
                raise self._not_found(session, name, spec, None)
            ids = select(ArtifactRow.id).where(ArtifactRow.name == name)
            if spec != ALL:
                ids = ids.where(ArtifactRow.id == found[0][0])
            session.execute(delete(LineageRow).where(LineageRow.child_id.in_(ids)))
            session.execute(delete(LineageRow).where(LineageRow.parent_id.in_(ids)))
            session.execute(delete(ArtifactRow).where(ArtifactRow.id.in_(ids.scalar_subquery())))
            locations = sorted({loc for _, loc in found})
            still_used = set(
                session.scalars(
                    select(ArtifactRow.location).where(ArtifactRow.location.in_(locations))
                )
            )
            return len(found), [loc for loc in locations if loc not in still_used]

        count, orphans = self._tx(drop, write=True, doing=f"deleting artifact {name!r}")
        for location in orphans:
            try:
                self._storage.delete(location)
            except Exception as exc:  # the rows are gone; the file is only an orphan now
                log.warning("deleted %r but could not remove its value: %s", name, exc)
        return int(count)

    # -- reading ------------------------------------------------------------------

    def get(
        self, name: str, version: int | str | None = None, *, key: str | None = None
    ) -> Artifact:
        """The record of ``version`` of ``name`` (default latest); ``key`` picks one identity."""
        name = check_name(name)
        spec = parse_version(version)

        def find(session: Session) -> Artifact:
            row = session.scalars(self._select(name, spec, key)).first()
            if row is None:
                raise self._not_found(session, name, spec, key)
            return self._artifact(row)

        result: Artifact = self._tx(find, write=False, doing=f"reading artifact {name!r}")
        return result

    def exists(
        self, name: str, version: int | str | None = None, *, key: str | None = None
    ) -> bool:
        """Whether such an artifact exists: one indexed query, no storage access."""
        name = check_name(name)
        spec = parse_version(version)
        found = self._scalar(
            _probe(spec == LATEST, key is not None),
            f"checking artifact {name!r}",
            name=name,
            version=spec,
            key=key,
        )
        return found is not None

    def load(self, name: str, version: int | str | None = LATEST, *, key: str | None = None) -> Any:
        """The value of ``version`` of ``name`` (default: latest)."""
        return self.load_artifact(self.get(name, version, key=key))

    def load_artifact(self, artifact: Artifact) -> Any:
        """Read, verify (sha256, size) and only then unpickle a value."""
        with self._storage.open_read(artifact.location) as handle:
            data, digest, actual = read_hashed(handle, artifact.size_bytes)
        if actual != artifact.size_bytes or digest != artifact.sha256:
            raise ChecksumMismatchError(
                f"Artifact {artifact.name!r} v{artifact.version} at {artifact.uri} is corrupt: "
                f"expected {artifact.size_bytes} bytes with sha256 {artifact.sha256[:16]}…, found "
                f"{_describe_size(actual, artifact.size_bytes)} bytes with sha256 {digest[:16]}…. "
                "Nothing was unpickled. Restore the file from a backup, or delete this version "
                "and rerun the task that made it."
            )
        return get_serializer(artifact.serializer).load(data)

    def versions(self, name: str) -> ArtifactList:
        """Every version of ``name``, oldest first (empty if the name has none)."""
        name = check_name(name)
        q = select(ArtifactRow).where(ArtifactRow.name == name).order_by(ArtifactRow.version)
        return self._rows(q, f"listing versions of {name!r}")

    def list(self) -> ArtifactList:
        """The latest version of every name, sorted by name."""
        latest = (
            select(ArtifactRow.name, func.max(ArtifactRow.version).label("v"))
            .group_by(ArtifactRow.name)
            .subquery()
        )
        q = (
            select(ArtifactRow)
            .join(latest, (ArtifactRow.name == latest.c.name) & (ArtifactRow.version == latest.c.v))
            .order_by(ArtifactRow.name)
        )
        return self._rows(q, "listing artifacts")

    def latest_version(self, name: str) -> int:
        """The highest existing version of ``name``, or -1 when it has none."""
        name = check_name(name)
        found = self._scalar(_LATEST_VERSION, f"reading artifact {name!r}", name=name)
        return -1 if found is None else int(found)

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
        ours, theirs = (
            (LineageRow.child_id, LineageRow.parent_id)
            if upstream
            else (LineageRow.parent_id, LineageRow.child_id)
        )

        def related(session: Session) -> ArtifactList:
            own = self._select(name, spec, None).with_only_columns(ArtifactRow.id)
            own_id = session.scalar(own)
            if own_id is None:
                raise self._not_found(session, name, spec, None)
            q = (
                select(ArtifactRow)
                .join(LineageRow, theirs == ArtifactRow.id)
                .where(ours == own_id)
                .order_by(ArtifactRow.name, ArtifactRow.version)
            )
            return [self._artifact(r) for r in session.scalars(q)]

        result: ArtifactList = self._tx(related, write=False, doing=f"reading lineage of {name!r}")
        return result

    def _rows(self, q: Select[Any], doing: str) -> ArtifactList:
        result: ArtifactList = self._tx(
            lambda s: [self._artifact(r) for r in s.scalars(q)], write=False, doing=doing
        )
        return result


_LATEST_VERSION = select(func.max(ArtifactRow.version)).where(ArtifactRow.name == bindparam("name"))


@functools.cache
def _probe(latest: bool, keyed: bool) -> Select[Any]:
    """Prebuilt existence queries (bound parameters name, version, key), one per shape."""
    q = select(ArtifactRow.id).where(ArtifactRow.name == bindparam("name"))
    if keyed:
        q = q.where(ArtifactRow.identity_key == bindparam("key"))
    if not latest:
        q = q.where(ArtifactRow.version == bindparam("version"))
    return q.limit(1)


def _safe_dirname(name: str) -> str:
    """A storage-safe folder for a name: no separators, no dot-only names."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".")[:100]
    return safe or "_"


def _span(versions: Iterable[int]) -> str:
    vs = list(versions)
    return ", ".join(map(str, vs)) if len(vs) <= 10 else f"{vs[0]}…{vs[-1]} ({len(vs)} in all)"


def _describe_size(actual: int, expected: int) -> str:
    return f"more than {expected}" if actual > expected else str(actual)
