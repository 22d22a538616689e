"""Alias rows: movable labels on versions, so ``"model@production"`` names one version.

Deployments refer to a label, not a number; moving the label (``set_alias``) is
one upsert in one transaction, so a reader sees the old version or the new one,
never neither. Validating an alias is ``names.check_alias``'s job.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.sql.expression import Executable

from ...errors import InvalidArgumentError
from ..schema import ALIASES, ARTIFACTS
from .chunks import chunked

_AL = ALIASES.c
_A = ARTIFACTS.c


def upsert(conn: Connection, name: str, alias: str, version: int) -> None:
    """Point ``name@alias`` at ``version``, creating or moving it, in the caller's transaction."""
    conn.execute(_upsert(conn.dialect.name), {"name": name, "alias": alias, "version": version})


@functools.cache
def _upsert(dialect: str) -> Executable:
    insert: Any
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise InvalidArgumentError(f"Aliases need SQLite or PostgreSQL, not {dialect}.")
    stmt: Executable = (
        insert(ALIASES)
        .values(name=bindparam("name"), alias=bindparam("alias"), version=bindparam("version"))
        .on_conflict_do_update(
            index_elements=[_AL.name, _AL.alias], set_={"version": bindparam("version")}
        )
    )
    return stmt


def remove(conn: Connection, name: str, alias: str) -> int | None:
    """Drop ``name@alias``; the version it pointed at, or None if there was no such alias."""
    version = conn.scalar(
        select(_AL.version).where(_AL.name == name, _AL.alias == alias).with_for_update()
    )
    if version is not None:
        conn.execute(delete(ALIASES).where(_AL.name == name, _AL.alias == alias))
    return None if version is None else int(version)


def of_name(conn: Connection, name: str) -> dict[str, int]:
    """Every alias of ``name`` and its version, by alias."""
    q = select(_AL.alias, _AL.version).where(_AL.name == name).order_by(_AL.alias)
    return {alias: int(version) for alias, version in conn.execute(q)}


def on_rows(conn: Connection, ids: list[int]) -> list[tuple[str, str, int]]:
    """(name, alias, version) of every alias pointing at one of the artifact rows ``ids``."""
    found: list[tuple[str, str, int]] = []
    for part in chunked(ids):
        q = (
            select(_AL.name, _AL.alias, _AL.version)
            .join(ARTIFACTS, (_A.name == _AL.name) & (_A.version == _AL.version))
            .where(_A.id.in_(part))
        )
        found.extend((n, a, int(v)) for n, a, v in conn.execute(q))
    return sorted(found)


#: the artifact row ``name@alias`` points at (bound parameters name, alias)
RESOLVE = (
    select(ARTIFACTS)
    .join(ALIASES, (_AL.name == _A.name) & (_AL.version == _A.version))
    .where(_AL.name == bindparam("name"), _AL.alias == bindparam("alias"))
)
