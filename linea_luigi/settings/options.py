"""Runtime configuration overrides: ``linea_luigi.options.set(key, value)``.

Values set here win over environment variables and luigi.cfg (see
``linea_luigi.config`` for the whole lookup order). They are per process.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import ConfigError

#: accepted keys, aliases mapped to their canonical name
_KEYS = {
    "database_url": "database_url",
    "db_connection": "database_url",
    "artifact_storage_dir": "artifact_storage_dir",
    "storage_options": "storage_options",
    "checksum": "checksum",
    "lock_timeout": "lock_timeout",
    "serializer": "serializer",
    "cache_dir": "cache_dir",
    "cache_max_bytes": "cache_max_bytes",
    "dedup": "dedup",
    "task_lock": "task_lock",
    "task_lock_timeout": "task_lock_timeout",
}


class Options:
    """A small, thread-safe key/value holder with validated keys."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: bumped on every change, so cached settings know when to re-resolve
        self.generation = 0

    @staticmethod
    def _canonical(key: str) -> str:
        try:
            return _KEYS[key]
        except (KeyError, TypeError):
            accepted = ", ".join(sorted(_KEYS))
            raise ConfigError(f"Unknown option {key!r}; accepted keys are: {accepted}.") from None

    def set(self, key: str, value: Any) -> None:
        """Override ``key`` for this process; ``None`` removes the override."""
        canonical = self._canonical(key)
        if canonical == "storage_options" and value is not None and not isinstance(value, dict):
            raise ConfigError(
                f"storage_options must be a dict (as passed to fsspec), got {type(value).__name__}."
            )
        if canonical != "storage_options" and value is not None and not isinstance(value, str):
            value = str(value)
        with self._lock:
            if value is None:
                self._values.pop(canonical, None)
            else:
                self._values[canonical] = dict(value) if isinstance(value, dict) else value
            self.generation += 1

    def get(self, key: str) -> Any:
        """The override for ``key``, or None when none is set."""
        canonical = self._canonical(key)
        with self._lock:
            value = self._values.get(canonical)
        return dict(value) if isinstance(value, dict) else value

    def reset(self) -> None:
        """Drop every override."""
        with self._lock:
            self._values.clear()
            self.generation += 1


options = Options()
