"""Module-level shortcuts on the configured default store (``ll.save``, ``ll.get``, ...)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..model import Artifact
from ..settings import Settings, resolve_settings
from . import ArtifactStore

_stores: dict[tuple[str, ...], ArtifactStore] = {}
_last: tuple[Settings, ArtifactStore] | None = None
_lock = threading.Lock()


def artifact_store() -> ArtifactStore:
    """The store for the configuration in effect now.

    Called for every task Luigi checks, so the common case (settings unchanged,
    the very object ``resolve_settings`` cached) costs an identity comparison.
    """
    global _last
    settings = resolve_settings()
    last = _last
    if last is not None and last[0] is settings:
        return last[1]
    key = settings.cache_key()
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ArtifactStore.from_settings(settings)
        _last = (settings, store)
    return store


def save(value: Any, name: str, *, serializer: str | None = None) -> Artifact:
    """Save ``value`` as the next version of ``name`` in the default store."""
    return artifact_store().save(value, name, serializer=serializer)


def get(name: str, version: int | str | None = None) -> Artifact:
    """The record of ``version`` (default latest) of ``name`` in the default store."""
    return artifact_store().get(name, version)


def load(
    name: str, version: int | str | None = None, *, columns: Sequence[str] | None = None
) -> Any:
    """The value of ``version`` (default latest) of ``name`` in the default store.

    ``columns``: only these columns of a Parquet value.
    """
    return artifact_store().load(name, version, columns=columns)


def delete(name: str, version: int | str) -> int:
    """Delete ``version`` (int, "latest" or "all") of ``name`` in the default store."""
    return artifact_store().delete(name, version)
