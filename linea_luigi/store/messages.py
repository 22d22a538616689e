"""The store's error messages: what went wrong, what exists instead, and what to do next.

Kept apart from ``ArtifactStore`` so its methods read as the order of
operations. The builders that look at the database (which versions or names
exist) run inside the caller's transaction, only once a lookup has failed.
A next step that is a call comes as ``Advice``: the Python call, and the
``linea-luigi`` command the CLI shows instead.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable

from sqlalchemy import Connection, select

from ..db.queries import aliases
from ..db.queries.artifacts import lookup_params, probe
from ..db.schema import ARTIFACTS
from ..errors import (
    Advice,
    ArtifactInUseError,
    ArtifactNotFoundError,
    ChecksumMismatchError,
    InvalidArgumentError,
)
from ..model import Artifact
from ..names import LATEST

_A = ARTIFACTS.c


def not_found(
    conn: Connection, store: str, name: str, version: int | str, key: str | None
) -> ArtifactNotFoundError:
    """Which versions of ``name`` exist, or which names in ``store`` look alike."""
    versions = list(conn.scalars(select(_A.version).where(_A.name == name).order_by(_A.version)))
    if not versions:
        names = list(conn.scalars(select(_A.name).distinct()))
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        return ArtifactNotFoundError(
            f"No artifact named {name!r} in {store}.{hint}",
            advice=Advice(
                "`store.list()` shows every name.", "`linea-luigi list` shows every name."
            ),
        )
    if key is not None:
        return ArtifactNotFoundError(
            f"Artifact {name!r} has no version with identity key {key[:12]}… "
            f"(versions {span(versions)} exist for other parameters or code versions)."
        )
    return ArtifactNotFoundError(
        f"Artifact {name!r} has no version {version}; it has versions {span(versions)} "
        f"(latest {versions[-1]})."
    )


def no_alias(conn: Connection, store: str, name: str, alias: str) -> ArtifactNotFoundError:
    """``name`` has no alias ``alias``: which aliases it has, or that ``name`` does not exist."""
    known = aliases.of_name(conn, name)
    if not known:
        if conn.scalar(probe(True, False), lookup_params(name, LATEST, None)) is None:
            return not_found(conn, store, name, LATEST, None)
        return ArtifactNotFoundError(
            f"Artifact {name!r} has no aliases; set one with",
            advice=Advice(
                f"store.set_alias({name!r}, <version>, {alias!r}).",
                f"{command('tag', f'{name}:VERSION', alias)}.",
            ),
        )
    close = difflib.get_close_matches(alias, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(f"{a} (v{v})" for a, v in known.items())
    return ArtifactNotFoundError(
        f"Artifact {name!r} has no alias {alias!r}.{hint} Its aliases: {listed}."
    )


def in_use(aliased: list[tuple[str, str, int]]) -> ArtifactInUseError:
    """A delete refused because aliases ``(name, alias, version)`` point at the versions."""
    pointers = ", ".join(f"{n}@{a} -> v{v}" for n, a, v in aliased)
    name, alias, _ = aliased[0]
    move, remove = "Move the alias to another version", "or remove it"
    return ArtifactInUseError(
        f"Refusing to delete: aliases point at it ({pointers}).",
        advice=Advice(
            f"{move} (store.set_alias({name!r}, <version>, {alias!r})) {remove} "
            f"(store.remove_alias({name!r}, {alias!r})), then delete.",
            f"{move} ({command('tag', f'{name}:VERSION', alias)}) {remove} "
            f"({command('untag', name, alias)}), then delete.",
        ),
    )


def deleted_meanwhile(artifact: Artifact) -> ArtifactNotFoundError:
    """A load whose value went away because the version was deleted after the lookup."""
    return ArtifactNotFoundError(
        f"Artifact {artifact.name!r} v{artifact.version} was deleted after it was "
        "looked up (by another process or call), so nothing was loaded. Look it "
        "up again to load what exists now."
    )


#: a version or identity key asked of ``name@alias``, which already names one version
ALIAS_ALONE = Advice(
    "pass no version or key.",
    "give NAME@ALIAS alone (`delete` with --version latest), or NAME with a version.",
)

_RESTORE = "Restore the file from a backup, or delete this version and rerun the task that made it."


def corrupt(artifact: Artifact, size: int, digest: str | None) -> ChecksumMismatchError:
    """A value whose bytes (``size`` read, ``digest`` if hashed) are not the ones recorded."""
    found = f"{_describe_size(size, artifact.size_bytes)} bytes"
    expected = f"{artifact.size_bytes} bytes"
    if digest is not None:
        found += f" with digest {digest[:23]}…"
        expected += f" with digest {artifact.digest[:23]}…"
    return ChecksumMismatchError(
        f"Artifact {artifact.name!r} v{artifact.version} at {artifact.uri} is corrupt: "
        f"expected {expected}, found {found}. Nothing was unpickled or parsed. {_RESTORE}"
    )


def bad_page(artifact: Artifact, detail: str) -> ChecksumMismatchError:
    """A column load that met a Parquet page whose CRC does not match."""
    return ChecksumMismatchError(
        f"Artifact {artifact.name!r} v{artifact.version} at {artifact.uri} is corrupt: a "
        f"Parquet page failed its checksum ({detail[:200]}). {_RESTORE}"
    )


def columns_need_parquet(artifact: Artifact) -> InvalidArgumentError:
    """``columns=`` asked of a value that is not stored as Parquet."""
    return InvalidArgumentError(
        f"columns= reads columns of Parquet values; artifact {artifact.name!r} "
        f"v{artifact.version} is stored with {artifact.serializer} "
        f"({artifact.value_type or 'type not recorded'}). Load it whole (no columns=)."
    )


def command(*words: str) -> str:
    """A ``linea-luigi`` command line in backquotes, each word quoted for a POSIX shell."""
    return "`" + " ".join(["linea-luigi", *map(shlex.quote, words)]) + "`"


def span(versions: Iterable[int]) -> str:
    """``0, 1, 2`` or, for more than ten, ``0…41 (42 in all)``."""
    vs = list(versions)
    return ", ".join(map(str, vs)) if len(vs) <= 10 else f"{vs[0]}…{vs[-1]} ({len(vs)} in all)"


def _describe_size(actual: int, expected: int) -> str:
    # a value longer than recorded is read to one byte past its size (``read_hashed``)
    return f"more than {expected}" if actual > expected else str(actual)
