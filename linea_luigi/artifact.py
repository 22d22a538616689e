"""``Artifact``: the small immutable record the public API hands out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runs import TaskRun
    from .store import ArtifactStore


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
    _store: ArtifactStore | None = field(default=None, repr=False, compare=False)

    def load(self) -> Any:
        """The value, verified against its digest before it is unpickled."""
        return self._owner("load from").load_artifact(self)

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

    def _owner(self, doing: str) -> ArtifactStore:
        if self._store is None:
            from .errors import ArtifactStoreError

            raise ArtifactStoreError(
                f"Artifact {self.name!r} v{self.version} has no store to {doing}."
            )
        return self._store


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
