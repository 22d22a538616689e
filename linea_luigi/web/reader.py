"""What the browser reads: pages of artifacts, one version's neighbourhood, task runs.

The store the browser reads through is bound to the storage root *recorded in
the database*, not to the scheduler's own ``[artifact_store]`` settings: a
``luigid`` host rarely configures the workers' storage, and a store built
from its defaults would try to bind an empty database to the wrong root.
Nothing here loads a value: metadata rows are read, and a value's preview
comes from ``ArtifactStore.preview`` (a Parquet footer and first rows, an
``.npy`` header; pickles are never opened).

Listing pages are keyset-paged (``after`` / ``before`` a name) and fetched in
one query each, one row more than shown to know whether another page follows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import URL, Select, select

from ..db.engine import transaction
from ..db.queries.artifacts import latest_per_name
from ..db.queries.history import runs_of_task
from ..db.schema import ARTIFACTS
from ..db.setup import status
from ..errors import ArtifactNotFoundError
from ..model import Artifact, TaskRun
from ..names import LATEST, check_name, parse_count, parse_version_text
from ..store import ArtifactStore
from . import graph

_A = ARTIFACTS.c

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class Page:
    """One page of a listing, with the keys that reach its neighbours."""

    items: list[Artifact]
    #: the key the next page starts beyond (None: this is the last page)
    next_key: Any = None
    #: the key the previous page ends before (None: this is the first page)
    prev_key: Any = None


@dataclass(frozen=True)
class Detail:
    """Everything the version page and ``/api/artifacts/<name>/<version>`` show."""

    artifact: Artifact
    upstream: list[Artifact]
    downstream: list[Artifact]
    #: aliases of this name that point at this version
    aliases: list[str]
    #: None when the scheduler records no task history
    runs: list[TaskRun] | None
    lineage: graph.Layout
    #: what the value holds, without running it (``values.preview``'s document)
    preview: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def name_filter(text: str | None) -> str | None:
    """The glob a search box means: a glob as typed, plain text as a substring."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    return text if _GLOB & set(text) else f"*{text}*"


def check_limit(raw: str | None) -> int:
    """A page size from a query string: 1..``MAX_LIMIT``, ``DEFAULT_LIMIT`` when absent."""
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    return parse_count(raw, "limit", minimum=1, maximum=MAX_LIMIT)


class Catalog:
    """The artifact database as the browser sees it (one per server, thread-safe)."""

    def __init__(
        self,
        db_url: URL,
        history_url: URL | None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.db_url = db_url
        #: where the scheduler records task history; None when it records none
        self.history_url = history_url
        #: how previews reach the recorded storage (e.g. an S3 endpoint); none: the defaults
        self.storage_options = storage_options
        self._store: ArtifactStore | None = None
        self._lock = threading.Lock()

    def store(self) -> ArtifactStore | None:
        """The store on the recorded root, or None while the database holds no artifact.

        Cached only once artifacts exist: until then an empty database may
        still be re-bound to another root by the first worker that saves.
        """
        if self._store is not None:
            return self._store
        found = status(self.db_url)
        if found.storage_root is None or not found.has_artifacts:
            return None
        with self._lock:
            if self._store is None:
                self._store = ArtifactStore(self.db_url, found.storage_root, self.storage_options)
            return self._store

    def _rows(self, q: Select[Any], doing: str) -> list[Artifact]:
        """The artifacts ``q`` selects, in one read; none while the database holds none."""
        store = self.store()
        return [] if store is None else store.records.rows(q, doing)

    # -- listings -------------------------------------------------------------------

    def latest(
        self,
        *,
        pattern: str | None = None,
        family: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page:
        """The latest version of each name (filtered by name glob and task family), by name."""
        q = latest_per_name(
            pattern,
            family=family,
            after=after,
            before=before,
            limit=limit + 1,  # one more than shown: whether another page follows
            descending=before is not None,
        )
        rows = self._rows(q, "listing artifacts")
        return _cut(
            rows,
            limit,
            backwards=before is not None,
            came_after=after is not None,
            key=lambda a: a.name,
        )

    def versions(self, name: str, *, before: int | None = None, limit: int = DEFAULT_LIMIT) -> Page:
        """Versions of ``name``, newest first, ``limit`` per page; 404 for an unknown name."""
        name = check_name(name)
        q = select(ARTIFACTS).where(_A.name == name)
        if before is not None:
            q = q.where(_A.version < before)
        q = q.order_by(_A.version.desc()).limit(limit + 1)
        rows = self._rows(q, f"listing versions of {name!r}")
        if not rows and before is None:
            raise _unknown(name)
        more = len(rows) > limit
        items = rows[:limit]
        return Page(items, next_key=items[-1].version if more else None, prev_key=before)

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and the version it points at."""
        store = self.store()
        return {} if store is None else store.aliases(name)

    # -- one version ------------------------------------------------------------------

    def detail(self, name: str, version: str, *, depth: int = graph.DEFAULT_DEPTH) -> Detail:
        """One version (a number, ``latest`` or an alias) with its lineage and runs."""
        name = check_name(name)
        store = self.store()
        if store is None or not store.exists(name):
            raise _unknown(name)  # without the store's "did you mean", which reads every name
        known = store.aliases(name)
        if version.isdigit():  # of any script: '²' is a bad number, never an alias
            a = store.get(name, parse_version_text(version))
        elif version == LATEST:
            a = store.get(name)
        elif version in known:
            a = store.get(name, known[version])
        else:
            raise ArtifactNotFoundError(
                f"Artifact {name!r} has no version or alias {version!r}: a version is a "
                f"number, 'latest' or one of its aliases ({', '.join(known) or 'none set'})."
            )
        layout = store.records.read(
            lambda conn: graph.neighbourhood(conn, a, depth), f"reading the lineage of {name!r}"
        )
        return Detail(
            artifact=a,
            upstream=store.upstream(name, a.version),
            downstream=store.downstream(name, a.version),
            aliases=sorted(alias for alias, v in known.items() if v == a.version),
            runs=self.runs(a.task_id),
            lineage=layout,
            preview=store.preview(a),
        )

    def runs(self, task_id: str | None) -> list[TaskRun] | None:
        """The recorded runs of ``task_id``; None when no task history is recorded."""
        if self.history_url is None:
            return None
        url = self.history_url
        found: list[TaskRun] = transaction(
            url, lambda conn: runs_of_task(conn, task_id), write=False, doing="reading task runs"
        )
        return found


def _unknown(name: str) -> ArtifactNotFoundError:
    return ArtifactNotFoundError(f"No artifact named {name!r} in this store.")


def _cut(
    rows: list[Artifact],
    limit: int,
    *,
    backwards: bool,
    came_after: bool,
    key: Callable[[Artifact], Any],
) -> Page:
    """A page from ``limit + 1`` rows read forwards (or backwards, newest key first)."""
    more = len(rows) > limit
    items = rows[:limit]
    if backwards:
        items.reverse()
        return Page(
            items,
            next_key=key(items[-1]) if items else None,
            prev_key=key(items[0]) if more else None,
        )
    return Page(
        items,
        next_key=key(items[-1]) if more else None,
        prev_key=key(items[0]) if came_after and items else None,
    )
