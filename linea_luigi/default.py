"""Module-level shortcuts on the configured default store (``ll.save``, ``ll.get``, ...)."""

from __future__ import annotations

import threading
from typing import Any

from .artifact import Artifact
from .config import resolve_settings
from .store import ArtifactStore

_stores: dict[tuple[str, str, str], ArtifactStore] = {}
_lock = threading.Lock()


def artifact_store() -> ArtifactStore:
    """The store for the configuration in effect now (re-resolved on every call)."""
    settings = resolve_settings()
    key = settings.cache_key()
    store = _stores.get(key)
    if store is None:
        with _lock:
            store = _stores.setdefault(
                key,
                ArtifactStore(
                    settings.database_url, settings.storage_dir, settings.storage_options
                ),
            )
    return store


def save(value: Any, name: str) -> Artifact:
    """Save ``value`` as the next version of ``name`` in the default store."""
    return artifact_store().save(value, name)


def get(name: str, version: int | str | None = None) -> Artifact:
    """The record of ``version`` (default latest) of ``name`` in the default store."""
    return artifact_store().get(name, version)


def load(name: str, version: int | str | None = None) -> Any:
    """The value of ``version`` (default latest) of ``name`` in the default store."""
    return artifact_store().load(name, version)


def delete(name: str, version: int | str) -> int:
    """Delete ``version`` (int, "latest" or "all") of ``name`` in the default store."""
    return artifact_store().delete(name, version)
