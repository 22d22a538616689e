"""The alias transactions of ``ArtifactStore``: move, remove, resolve ``name@alias``.

Each runs inside the caller's transaction (``Records.write`` / ``read``);
``store`` is the store's repr, for the "what exists instead" messages.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from ..db.queries import aliases
from ..db.queries.artifacts import find, lookup_params, probe
from ..names import LATEST
from . import messages


def move(conn: Connection, store: str, name: str, spec: int | str, alias: str) -> Any:
    """Point ``name@alias`` at version ``spec``; returns that version's row."""
    # FOR SHARE: a concurrent delete of this version waits for us, then sees the alias
    q = find(spec == LATEST, False).with_for_update(read=True)
    row = conn.execute(q, lookup_params(name, spec, None)).first()
    if row is None:
        raise messages.not_found(conn, store, name, spec, None)
    aliases.upsert(conn, name, alias, row.version)
    return row


def remove(conn: Connection, store: str, name: str, alias: str) -> int:
    """Remove ``name@alias``; returns the version it pointed at."""
    version = aliases.remove(conn, name, alias)
    if version is None:
        raise messages.no_alias(conn, store, name, alias)
    return version


def resolve(conn: Connection, store: str, ref: str, name: str, alias: str) -> Any:
    """The row ``name@alias`` names; None when no such alias but an artifact named ``ref``."""
    row = conn.execute(aliases.RESOLVE, {"name": name, "alias": alias}).first()
    if row is not None:
        return row
    if conn.scalar(probe(True, False), lookup_params(ref, LATEST, None)) is not None:
        return None  # a name that merely contains '@'
    raise messages.no_alias(conn, store, name, alias)
