"""The records the public API hands out: ``Artifact``, ``TaskInfo``, ``TaskRun``, ``GcReport``.

Small frozen values with no behaviour of their own beyond formatting. An
``Artifact`` keeps the store that made it only through ``ArtifactSource``, the
few methods it forwards to, so this module imports nothing of the package
above it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from .errors import ArtifactStoreError


class ArtifactSource(Protocol):
    """What an ``Artifact`` asks of the store that made it (``ArtifactStore`` is one)."""

    def load_artifact(self, artifact: Artifact, columns: Sequence[str] | None = ...) -> Any: ...

    def upstream(self, name: str, version: int | str | None = ...) -> list[Artifact]: ...

    def downstream(self, name: str, version: int | str | None = ...) -> list[Artifact]: ...

    def task_runs(self, name: str, version: int | str | None = ...) -> list[TaskRun]: ...


@dataclass(frozen=True)
class TaskInfo:
    """Luigi facts recorded with an artifact (filled in by the Luigi integration)."""

    family: str
    task_id: str
    identity_key: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, repr=False)
class Artifact:
    """One version of a named artifact. ``load()`` reads its value back."""

    name: str
    version: int
    created_at: datetime
    uri: str
    location: str
    serializer: str
    size_bytes: int
    #: ``"<algorithm>:<hex>"`` (``"blake3:…"`` by default, ``"sha256:…"`` on request)
    digest: str
    python_version: str
    task_family: str | None = None
    task_id: str | None = None
    identity_key: str | None = None
    params: Mapping[str, Any] | None = None
    #: the saved value's qualified type (``"pandas.DataFrame"``, ``"builtins.dict"``);
    #: None on versions saved before linea_luigi recorded it
    value_type: str | None = None
    #: versions of the libraries that wrote the value (``{"python": "3.11.7", ...}``)
    libraries: Mapping[str, str] | None = None
    _store: ArtifactSource | None = field(default=None, repr=False, compare=False)

    def load(self, columns: Sequence[str] | None = None) -> Any:
        """The value, verified against its digest before it is parsed.

        ``columns``: only these columns of a Parquet value (see ``ArtifactStore.load``).
        """
        return self._owner("load from").load_artifact(self, columns)

    def __repr__(self) -> str:
        """What a person at a REPL needs to tell versions apart (all fields: ``asdict``)."""
        created = self.created_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        task = f", task={self.task_id!r}" if self.task_id else ""
        return (
            f"Artifact(name={self.name!r}, version={self.version}, created={created!r}, "
            f"size={human_size(self.size_bytes)!r}{task})"
        )

    def upstream(self) -> list[Artifact]:
        """The exact artifact versions this one was made from."""
        return self._owner("read lineage from").upstream(self.name, self.version)

    def downstream(self) -> list[Artifact]:
        """The artifact versions made from this one."""
        return self._owner("read lineage from").downstream(self.name, self.version)

    def task_runs(self) -> list[TaskRun]:
        """Luigi's recorded runs of the task that saved this artifact, oldest first."""
        return self._owner("read runs from").task_runs(self.name, self.version)

    def _owner(self, doing: str) -> ArtifactSource:
        if self._store is None:
            raise ArtifactStoreError(
                f"Artifact {self.name!r} v{self.version} has no store to {doing}."
            )
        return self._store


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time: how every time from the artifact database is read.

    We always write UTC. SQLite keeps no zone, so a naive time is UTC;
    PostgreSQL answers in the session's time zone, so an aware one is converted.
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def human_size(size_bytes: int) -> str:
    """``1536`` → ``"1.5 KiB"``: sizes in reprs and tables are read, not parsed."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    size = size_bytes / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@dataclass(frozen=True)
class TaskRun:
    """One record of Luigi's task history (a row of ``tasks``) with its events.

    Luigi keeps one record per task per scheduler lifetime, so a task retried
    by the same scheduler has one record with several events. Times are UTC;
    Luigi records naive local times, read here in this process's time zone (as
    Luigi's own pages do). ``started_at is None`` means the task never ran in
    this record: a worker found it already complete.
    """

    #: Luigi's record id (``/history/by_id/<record_id>`` on the scheduler)
    record_id: int
    task_id: str | None
    family: str | None
    host: str | None
    #: the latest event: ``"PENDING"``, ``"RUNNING"``, ``"DONE"`` or ``"FAILED"``
    status: str | None
    #: first PENDING
    scheduled_at: datetime | None
    #: last RUNNING
    started_at: datetime | None
    #: last DONE
    finished_at: datetime | None
    #: last FAILED
    failed_at: datetime | None
    #: every ``(event_name, time)``, oldest first
    events: tuple[tuple[str, datetime], ...] = ()
    #: parameters as Luigi serialised them
    params: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class OrphanValue:
    """A stored file no artifact row references."""

    uri: str
    location: str
    size_bytes: int
    modified: datetime | None


@dataclass(frozen=True)
class GcReport:
    """What ``collect`` deleted, or would delete in a dry run."""

    dry_run: bool
    #: versions deleted (or to delete), by name and version
    versions: list[Artifact] = field(default_factory=list)
    #: unreferenced values removed (or to remove)
    orphans: list[OrphanValue] = field(default_factory=list)
    #: unreferenced values left alone because they are younger than the grace period
    young_orphans: list[OrphanValue] = field(default_factory=list)
    #: values whose removal failed (the rows are gone; they are orphans for the next gc)
    failed: list[str] = field(default_factory=list)
    #: locations of deleted versions that other rows still reference (identical values
    #: are stored once): their objects stay, so they free nothing
    shared: frozenset[str] = frozenset()

    @property
    def size_bytes(self) -> int:
        """Bytes freed (or to free): each object of the deleted versions once, unless still
        shared, plus the removed orphans."""
        freed = {a.location: a.size_bytes for a in self.versions if a.location not in self.shared}
        return sum(freed.values()) + sum(o.size_bytes for o in self.orphans)
