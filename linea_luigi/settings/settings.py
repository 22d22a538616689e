"""``Settings``: where the metadata and the values live, frozen, passed down by constructors.

Also the names and limits of the settings themselves (digest algorithms, the
lock timeout), so that the layers below configuration (digests, engines) take
their defaults from here instead of importing each other.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from ..errors import Advice, ArtifactStoreError, ConfigError
from .parsing import CACHE_AUTO, parse_bytes, parse_cache_dir, parse_seconds, parse_switch
from .urls import mask_url, parse_db_url

BLAKE3 = "blake3"
SHA256 = "sha256"
#: the digests this package writes and verifies; a stored digest names its algorithm
DIGEST_ALGORITHMS = (BLAKE3, SHA256)
DEFAULT_DIGEST = BLAKE3
#: seconds a statement waits for another process's lock (the setting's default)
DEFAULT_LOCK_TIMEOUT_S = 60.0
#: longest lock wait accepted, in seconds (a day; PostgreSQL's own limit is ~24 days)
MAX_LOCK_TIMEOUT_S = 86400.0
#: ``serializer`` setting that picks a serializer by the value's type
AUTO = "auto"
#: the serializers by name, in the order ``auto`` tries them (``values.serializers``)
SERIALIZERS = ("parquet", "npy", "cloudpickle")
#: what the ``serializer`` setting accepts
SERIALIZER_CHOICES = (AUTO, *SERIALIZERS)
#: ``[artifact_store]``: the luigi.cfg section of linea_luigi
SECTION = "artifact_store"


def default_home() -> Path:
    """Folder of the embedded defaults (``~/.linea_luigi``)."""
    return Path.home() / ".linea_luigi"


@dataclass(frozen=True)
class Settings:
    """Where the metadata and the values live. Immutable; pass it down."""

    database_url: URL
    storage_dir: str
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    #: digest algorithm for new values (stored values keep the one they were written with)
    checksum: str = DEFAULT_DIGEST
    #: seconds a statement waits for another process's lock before ``DatabaseLockedError``
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_S
    #: how new values are written: ``auto`` (by the value's type) or a serializer's name
    serializer: str = AUTO
    #: local cache of remote values: ``auto`` (on for remote storage), ``none``, or a folder
    cache_dir: str = CACHE_AUTO
    #: cap of the cache in bytes; None: the smaller of 10 GiB and 10 % of the free space
    cache_max_bytes: int | None = None
    #: whether a save of a value already stored (same digest) points at it instead of a copy
    dedup: bool = True
    #: whether ``ArtifactTaskMixin`` runs a task under a database lock on its identity key
    task_lock: bool = True
    #: seconds a task waits for that lock; None: as long as the holder lives
    task_lock_timeout: float | None = None

    def __post_init__(self) -> None:
        if not str(self.storage_dir).strip():
            raise ConfigError("artifact_storage_dir is empty: set a folder path or fsspec URL.")
        if self.checksum not in DIGEST_ALGORITHMS:
            raise ConfigError(
                f"Unknown checksum {self.checksum!r}; choose one of {', '.join(DIGEST_ALGORITHMS)}",
                advice=_where_set("checksum", "options.set('checksum', ...)"),
            )
        where = "options.set('serializer', ...) or ArtifactStore(serializer=...)"
        check_serializer(
            self.serializer, "The serializer setting", ConfigError, _where_set("serializer", where)
        )

    @classmethod
    def create(
        cls,
        database_url: str | URL,
        storage_dir: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        checksum: str | None = None,
        lock_timeout: float | str | None = None,
        serializer: str | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_max_bytes: int | str | None = None,
        dedup: bool | str | None = None,
        task_lock: bool | str | None = None,
        task_lock_timeout: float | str | None = None,
    ) -> Settings:
        """Build settings from raw values (or their luigi.cfg text), normalising each."""
        if not isinstance(storage_dir, (str, os.PathLike)):
            raise ConfigError(
                "artifact_storage_dir must be a path or fsspec URL, got "
                f"{type(storage_dir).__name__}."
            )
        if storage_options is not None and not isinstance(storage_options, dict):
            raise ConfigError(
                "storage_options must be a dict of fsspec options, got "
                f"{type(storage_options).__name__}."
            )
        if checksum is not None and not isinstance(checksum, str):
            raise ConfigError(f"checksum must be a string, got {type(checksum).__name__}.")
        if serializer is not None and not isinstance(serializer, str):
            raise ConfigError(f"serializer must be a string, got {type(serializer).__name__}.")
        return cls(
            parse_db_url(database_url),
            os.fspath(storage_dir),
            dict(storage_options or {}),
            (checksum or DEFAULT_DIGEST).strip().lower(),
            parse_lock_timeout(lock_timeout),
            (serializer or AUTO).strip().lower(),
            parse_cache_dir(cache_dir),
            parse_bytes(cache_max_bytes, "cache_max_bytes"),
            parse_switch(dedup, "dedup", True),
            parse_switch(task_lock, "task_lock", True),
            parse_seconds(task_lock_timeout, "task_lock_timeout", MAX_LOCK_TIMEOUT_S * 365),
        )

    def cache_key(self) -> tuple[str, ...]:
        """A hashable identity, including the (unprinted) password and options."""
        return (
            self.database_url.render_as_string(hide_password=False),
            self.storage_dir,
            json.dumps(self.storage_options, sort_keys=True, default=str),
            self.checksum,
            repr(self.lock_timeout),
            self.serializer,
            self.cache_dir,
            repr(self.cache_max_bytes),
            repr(self.dedup),
            repr(self.task_lock),
            repr(self.task_lock_timeout),
        )

    def __repr__(self) -> str:
        opts = sorted(self.storage_options)
        return (
            f"Settings(database_url={mask_url(self.database_url)!r}, "
            f"storage_dir={mask_url(self.storage_dir)!r}, storage_options keys={opts}, "
            f"checksum={self.checksum!r}, lock_timeout={self.lock_timeout!r}, "
            f"serializer={self.serializer!r}, cache_dir={self.cache_dir!r}, "
            f"cache_max_bytes={self.cache_max_bytes!r}, dedup={self.dedup!r}, "
            f"task_lock={self.task_lock!r}, "
            f"task_lock_timeout={self.task_lock_timeout!r})"
        )


def check_serializer(
    name: object, what: str, error: type[ArtifactStoreError], advice: Advice | None = None
) -> str:
    """``name`` if it is one of ``SERIALIZER_CHOICES``; else ``error`` naming ``what`` and them."""
    if isinstance(name, str) and name in SERIALIZER_CHOICES:
        return name
    fact = f"{what} must be one of {', '.join(SERIALIZER_CHOICES)}, got {str(name)[:40]!r}"
    raise error(fact, advice=advice) if advice is not None else error(f"{fact}.")


def _where_set(key: str, in_python: str) -> Advice:
    """Where a setting is changed: luigi.cfg for every surface, ``in_python`` too for Python."""
    return Advice(f"([{SECTION}] {key} or {in_python}).", f"([{SECTION}] {key} in luigi.cfg).")


def parse_lock_timeout(value: float | str | None) -> float:
    """Seconds from a number or its text; None is the default. Out of range: ``ConfigError``."""
    seconds = parse_seconds(value, "lock_timeout", MAX_LOCK_TIMEOUT_S)
    return DEFAULT_LOCK_TIMEOUT_S if seconds is None else seconds
