"""Artifact rows: the prebuilt lookups of the hot path, the insert, and the latest row per name.

Every statement the store runs per task (``exists``, ``get``, ``save``,
``latest_version``) is built here once per process, with bound parameters,
so ``db.executor`` compiles it once per dialect; one statement per shape
(latest or numbered version, with or without an identity key).

``latest_per_name`` is the one definition of "the latest version of each
name", which ``ArtifactStore.list`` and the browser's listing share. It cuts
the page inside the grouping, so the database walks the ``(name, version)``
index and stops after the page.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, bindparam, func, select

from ... import globs
from ...model import TaskInfo
from ...names import ALL, LATEST
from ..executor import Executor
from ..schema import ARTIFACTS

_A = ARTIFACTS.c
_PYTHON_VERSION = platform.python_version()

#: a new row (every column but ``id``); returns its id
INSERT_ARTIFACT = (
    ARTIFACTS.insert()
    .values({c.name: bindparam(c.name) for c in ARTIFACTS.c if c is not _A.id})
    .returning(_A.id)
)
#: the highest version of ``name`` (NULL when it has none)
LATEST_VERSION = select(func.max(_A.version)).where(_A.name == bindparam("name"))
_BY_KEY = (
    select(_A.identity_key, func.max(_A.version).label("v"))
    .where(_A.name == bindparam("name"), _A.identity_key.in_(bindparam("keys", expanding=True)))
    .group_by(_A.identity_key)
    .subquery()
)
#: the latest row of ``name`` per identity key in ``keys``: the index on (identity_key,
#: name, version) finds each key's latest version, the unique (name, version) index its row
LATEST_BY_KEYS = select(ARTIFACTS).join(
    _BY_KEY, (_A.name == bindparam("name")) & (_A.version == _BY_KEY.c.v)
)
#: the location of some row whose value has this digest, serializer and size (the index on
#: digest finds it), locked FOR SHARE until the transaction ends (see ``stored_copy``)
SAME_VALUE = (
    select(_A.location)
    .where(
        _A.digest == bindparam("digest"),
        _A.serializer == bindparam("serializer"),
        _A.size_bytes == bindparam("size_bytes"),
    )
    .limit(1)
    .with_for_update(read=True)
)


def stored_copy(tx: Executor, row: Mapping[str, Any]) -> str | None:
    """The location of a stored value identical to ``row``'s, kept by a lock; None if none.

    Identical: same digest, serializer and size. A save calls this inside the
    transaction that inserts its row and, when it gets a location, inserts
    the row with it and removes its own copy after the commit.

    The race: a delete or gc may be removing the last other row that
    references this object while the save reuses it. Both orders are safe,
    because the lookup holds a lock that the deleter's conflicts with:

    - PostgreSQL: the lookup locks the row it returns ``FOR SHARE``; deleters
      lock their rows ``FOR UPDATE`` (``ArtifactStore.delete``, gc's ``_lock``)
      and a ``DELETE`` locks them anyway. If the save locks first, the deleter
      waits until the save commits; its check for remaining references
      (``removal.referenced``) is a later statement, which under READ
      COMMITTED (PostgreSQL's default, which we do not change) sees the
      committed new row, so the object stays. If the deleter locks first, the
      lookup waits; once the delete commits the row is gone, the lookup skips
      it (and takes another identical row, if one is left), and with none the
      save keeps its own copy (a save that knew the digest before writing,
      ``store.prehash``, rolls back and writes its value then).
    - SQLite: a write transaction begins with ``BEGIN IMMEDIATE``
      (``db.executor`` and ``db.engine``), so the save's lookup and insert and
      a whole delete never interleave: whichever commits first is seen whole
      by the other.

    From the lookup on, some committed row references the object at every
    instant, so gc's orphan scan (any referenced location is live) never
    takes it either. A save whose inputs are being deleted may meet a
    deadlock or a missing parent: it fails and removes its copy, as before.
    """
    params = {k: row[k] for k in ("digest", "serializer", "size_bytes")}
    found = tx.scalar(SAME_VALUE, params)
    return None if found is None else str(found)


def new_row(name: str, value: Mapping[str, Any], task: TaskInfo | None) -> dict[str, Any]:
    """The columns of a new version of ``name`` whose value is written, created now.

    ``value``: the value's own columns (``location``, ``serializer``,
    ``size_bytes``, ``digest``, ``value_type``, ``libraries``). All but ``id``
    and ``version``: the version is allocated in the transaction that inserts
    the row (``INSERT_ARTIFACT``).
    """
    return {
        "name": name,
        "created_at": datetime.now(timezone.utc),
        **value,
        "python_version": _PYTHON_VERSION,
        "task_family": task.family if task else None,
        "task_id": task.task_id if task else None,
        "identity_key": task.identity_key if task else None,
        "params": dict(task.params) if task else None,
    }


def lookup_params(name: str, version: int | str, key: str | None) -> dict[str, Any]:
    """The bound parameters of ``find`` and ``probe``."""
    return {"name": name, "version": version, "key": key}


@functools.cache
def find(latest: bool, keyed: bool) -> Select[Any]:
    """The row of one version (bound parameters: see ``lookup_params``), one per shape."""
    q = _where(select(ARTIFACTS), latest, keyed)
    return q.order_by(_A.version.desc()).limit(1) if latest else q


@functools.cache
def probe(latest: bool, keyed: bool) -> Select[Any]:
    """Whether such a version exists (bound parameters: see ``lookup_params``)."""
    return _where(select(_A.id), latest, keyed).limit(1)


def _where(q: Select[Any], latest: bool, keyed: bool) -> Select[Any]:
    q = q.where(_A.name == bindparam("name"))
    if keyed:
        q = q.where(_A.identity_key == bindparam("key"))
    return q if latest else q.where(_A.version == bindparam("version"))


@functools.cache
def find_id(latest: bool) -> Select[Any]:
    """The id of one version's row (bound parameters: see ``lookup_params``)."""
    return find(latest, False).with_only_columns(_A.id)


def located(version: int | str) -> Select[Any]:
    """(id, location) of one version, the latest (``names.LATEST``) or all (``names.ALL``).

    Bound parameters: see ``lookup_params``.
    """
    if version == ALL:
        return select(_A.id, _A.location).where(_A.name == bindparam("name"))
    return find(version == LATEST, False).with_only_columns(_A.id, _A.location)


def versions_of(name: str) -> Select[Any]:
    """Every row of ``name``, oldest first."""
    return select(ARTIFACTS).where(_A.name == name).order_by(_A.version)


def with_params_of(name: str) -> Select[Any]:
    """The rows of ``name`` that recorded Luigi task parameters, oldest first."""
    return versions_of(name).where(_A.params.is_not(None))


def latest_per_name(
    pattern: str | None = None,
    *,
    family: str | None = None,
    after: str | None = None,
    before: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    descending: bool = False,
) -> Select[Any]:
    """One query: the latest row of each name, filtered, one page, by name.

    ``pattern`` is a name glob (``globs``); ``after``/``before`` are keyset
    bounds on the name; ``descending`` reads the page backwards (a page
    *before* a name). Without ``family`` the page is cut inside the grouping,
    so the database walks the ``(name, version)`` index and stops after
    ``limit`` names; a family filter applies to the latest row and so after it.
    """
    order = _A.name.desc() if descending else _A.name
    names: Select[Any] = select(_A.name, func.max(_A.version).label("v"))
    if pattern is not None:
        names = names.where(globs.matches(_A.name, pattern))
    if family is None:
        names = _keyset(names, after, before).group_by(_A.name).order_by(order)
        names = names.offset(offset or None).limit(limit)
    else:
        names = names.group_by(_A.name)
    latest = names.subquery()
    q = select(ARTIFACTS).join(latest, (_A.name == latest.c.name) & (_A.version == latest.c.v))
    if family is not None:
        q = _keyset(q.where(_A.task_family == family), after, before)
        q = q.offset(offset or None).limit(limit)
    return q.order_by(order)


def _keyset(q: Select[Any], after: str | None, before: str | None) -> Select[Any]:
    if after is not None:
        q = q.where(_A.name > after)
    if before is not None:
        q = q.where(_A.name < before)
    return q
