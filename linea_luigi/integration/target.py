"""``ArtifactTarget``: a ``luigi.Target`` backed by the artifact store.

Luigi asks targets ``exists()`` once per task per scheduling pass, often for
thousands of tasks, so ``exists()`` is exactly one indexed database query and
never touches the value storage. Luigi pickles tasks (``parallel_scheduling``,
worker processes), so a target holds only plain data: a name, a version, a key
and at most a settings-only ``ArtifactStore``; engines and filesystems are
looked up per process when the target is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import luigi

from ..errors import InvalidArgumentError
from ..model import Artifact, TaskInfo
from ..names import LATEST, check_name, parse_version
from ..store import ArtifactStore


class ArtifactTarget(luigi.Target):
    """One artifact, or the latest version of a name (optionally of one identity).

    ``ArtifactTarget("name")`` exists iff the name has any version;
    ``version=2`` selects that version; ``key=identity`` selects the latest
    version made by a task with that identity key (what ``ArtifactTaskMixin``
    uses). ``store=None`` means the configured default store, resolved at each
    use, so a target built before configuration still finds the right store.
    """

    def __init__(
        self,
        name: str,
        version: int | str | None = None,
        key: str | None = None,
        store: ArtifactStore | None = None,
    ) -> None:
        self.name = check_name(name)
        spec = parse_version(version)
        self.version: int | None = None if spec == LATEST else int(spec)
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise InvalidArgumentError(
                f"key must be a non-empty identity key string or None, got {key!r}."
            )
        self.key = key
        if store is not None and not isinstance(store, ArtifactStore):
            raise InvalidArgumentError(
                f"store must be an ll.ArtifactStore or None (the configured default), got "
                f"{type(store).__name__}."
            )
        self._store = store

    @property
    def store(self) -> ArtifactStore:
        """The explicit store, else the default store for the configuration in effect now."""
        if self._store is not None:
            return self._store
        from ..store.default import artifact_store

        return artifact_store()

    def _spec(self) -> int | str:
        return LATEST if self.version is None else self.version

    def exists(self) -> bool:
        """Whether the selected artifact exists: one indexed query, no storage access."""
        return self.store.exists(self.name, self._spec(), key=self.key)

    def get(self) -> Artifact:
        """The selected artifact's record; ``ArtifactNotFoundError`` if there is none."""
        return self.store.get(self.name, self._spec(), key=self.key)

    def load(self, columns: Sequence[str] | None = None) -> Any:
        """The selected artifact's value, checksum-verified before it is parsed.

        ``columns``: only these columns of a Parquet value (``ArtifactStore.load``).
        """
        return self.store.load(self.name, self._spec(), key=self.key, columns=columns)

    def save(
        self,
        value: Any,
        *,
        task: TaskInfo | None = None,
        upstream: Iterable[Artifact] = (),
        serializer: str | None = None,
    ) -> Artifact:
        """Save ``value`` as the next version of the name; nothing is overwritten.

        ``serializer``: as ``ArtifactStore.save`` (None: the store's setting).

        A target with a ``key`` only finds artifacts carrying that identity key,
        so saving through it needs ``task`` with the same key (the mixin passes
        it); otherwise the new version would be invisible to ``exists()``.
        """
        if self.version is not None:
            raise InvalidArgumentError(
                f"{self!r} is pinned to version {self.version} and is read-only: the store "
                f"allocates versions on save. Save through ArtifactTarget({self.name!r}) instead."
            )
        if self.key is not None:
            if task is None:
                raise InvalidArgumentError(
                    f"{self!r} selects identity key {self.key[:12]}…; pass "
                    "task=ll.TaskInfo(...) with that identity_key, or save from the task's "
                    "run() with ArtifactTaskMixin.save()."
                )
            if task.identity_key != self.key:
                raise InvalidArgumentError(
                    f"{self!r} selects identity key {self.key[:12]}… but task "
                    f"{task.task_id!r} has identity key {task.identity_key[:12]}…; the saved "
                    "artifact would never satisfy this target."
                )
        return self.store.save(
            value, self.name, task=task, upstream=upstream, serializer=serializer
        )

    def __repr__(self) -> str:
        parts = [repr(self.name)]
        if self.version is not None:
            parts.append(f"version={self.version}")
        if self.key is not None:
            parts.append(f"key={self.key[:12]!r}")
        if self._store is not None:
            parts.append(f"store={self._store!r}")
        return f"ArtifactTarget({', '.join(parts)})"
