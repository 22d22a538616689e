"""Lineage edges: which exact artifact versions each version was made from.

An edge joins two rows of ``ll_artifacts`` by id (child made from parent).
Edges are written in the transaction that inserts the child, so a version
never appears without its inputs; they go with either end
(``removal.delete_rows``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, bindparam, select

from ...errors import ArtifactNotFoundError, InvalidArgumentError
from ...model import Artifact
from ..executor import Executor
from ..schema import ARTIFACTS, LINEAGE
from .artifacts import find_id

_A = ARTIFACTS.c
_L = LINEAGE.c

_INSERT_EDGE = LINEAGE.insert().values(
    child_id=bindparam("child_id"), parent_id=bindparam("parent_id")
)
#: a parent's id by (name, version): the same prebuilt lookup as every numbered version's
_PARENT_ID = find_id(False)


def parents(upstream: Iterable[Artifact]) -> list[tuple[str, int]]:
    """The distinct (name, version) of the ``upstream`` records, in order, for ``link``."""
    found: dict[tuple[str, int], None] = {}
    for p in upstream:
        if not isinstance(p, Artifact):
            raise InvalidArgumentError(f"upstream must hold Artifact records, got {p!r}.")
        found[(p.name, p.version)] = None
    return list(found)


def link(tx: Executor, child_id: int, parents: list[tuple[str, int]], child: str) -> None:
    """Record edges from ``child_id`` (of ``child``) to each (name, version) of ``parents``."""
    edges = []
    for name, version in parents:  # one unique-index seek each
        parent_id = tx.scalar(_PARENT_ID, {"name": name, "version": version})
        if parent_id is None:
            raise ArtifactNotFoundError(
                f"Upstream artifact {name!r} v{version} was deleted while {child!r} was being "
                "saved; rerun the upstream task."
            )
        edges.append({"child_id": child_id, "parent_id": parent_id})
    tx.many(_INSERT_EDGE, edges)


def related(row_id: Any, *, upstream: bool) -> Select[Any]:
    """The rows ``row_id`` was made from (``upstream``) or that were made from it, by name."""
    # upstream: we are the child and want the parents; downstream the reverse
    ours, theirs = (_L.child_id, _L.parent_id) if upstream else (_L.parent_id, _L.child_id)
    return (
        select(ARTIFACTS)
        .join(LINEAGE, theirs == _A.id)
        .where(ours == row_id)
        .order_by(_A.name, _A.version)
    )
