"""Resolve where artifacts live: one frozen ``Settings`` for the whole package.

Lookup order, first hit wins, key by key:

1. ``linea_luigi.options.set(key, value)`` in this process;
2. environment: ``LINEA_LUIGI_DATABASE_URL``, ``LINEA_LUIGI_ARTIFACT_STORAGE_DIR``
   (storage_options deliberately have no variable: credentials come through the
   provider's own mechanism, e.g. ``AWS_PROFILE``);
3. luigi.cfg ``[artifact_store]`` keys ``db_connection``, ``artifact_storage_dir``,
   ``storage_options`` (a JSON object), ``checksum`` (``blake3``, the default, or
   ``sha256``), ``lock_timeout`` (seconds a write waits for another process's
   lock, 60 by default), ``serializer`` (``auto``, the default, ``parquet``,
   ``npy`` or ``cloudpickle``), read through Luigi's own configuration,
   so ``LUIGI_CONFIG_PATH``, ``${ENV}`` interpolation and command-line overrides
   such as ``--artifact-store-db-connection`` work;
4. luigi.cfg ``[task_history] db_connection`` (the database only), so artifacts
   and Luigi's task history share one database;
5. defaults: ``sqlite:///~/.linea_luigi/db.sqlite`` and ``~/.linea_luigi/artifacts``.

Resolving reads luigi.cfg through Luigi's Config machinery, which costs far more
than a task's own bookkeeping, so the result is cached per process and
re-resolved only when an input changes: ``options``, the environment variables
above, ``HOME``, the raw ``[artifact_store]`` / ``[task_history]`` sections or
Luigi's command-line parser. A section that interpolates ``${VAR}`` is never
cached, since any variable may change.

Misconfiguration is caught when settings are (re)resolved, never on the cached
path: an unknown key in ``[artifact_store]`` is a ``ConfigError`` naming the key
and the nearest accepted one, and a section that looks like ours
(``[artifact-store]``, ``[linea_luigi]``) gets a ``ConfigWarning``. No
configured value is ever part of a message: Luigi's own warning about
unconsumed keys, which prints the value (a password in a URL, say), is
switched off for the section (``ignore_unconsumed``), since we check the keys.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from ..errors import ConfigError
from .luigi_cfg import check_config, file_defining, luigi_get, raw_sections
from .options import options
from .settings import SECTION, Settings, default_home

ENV_DATABASE_URL = "LINEA_LUIGI_DATABASE_URL"
ENV_STORAGE_DIR = "LINEA_LUIGI_ARTIFACT_STORAGE_DIR"
DEFAULT = "default"


def _parse_storage_options(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"[{SECTION}] storage_options is not valid JSON ({exc.msg} at position {exc.pos}); "
            'write a JSON object such as {"anon": false, "requester_pays": true}.'
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(
            f"[{SECTION}] storage_options must be a JSON object, got {type(value).__name__}."
        )
    return value


_WATCHED_SECTIONS = (SECTION, "task_history")
_cached: tuple[tuple[Any, ...], Settings] | None = None
_cache_lock = threading.Lock()


def _inputs() -> tuple[Any, ...] | None:
    """Everything resolution depends on, cheaply; None when it cannot be read so."""
    import luigi.configuration

    cfg = luigi.configuration.get_config()  # type: ignore[no-untyped-call]
    raw = raw_sections(cfg)
    if raw is None:
        return None
    sections = tuple(raw)  # a look-alike section appearing must re-resolve (and warn)
    cmdline = sys.modules.get("luigi.cmdline_parser")
    parser = cmdline.CmdlineParser.get_instance() if cmdline is not None else None
    env = os.environ
    return (
        options.generation,
        env.get(ENV_DATABASE_URL),
        env.get(ENV_STORAGE_DIR),
        env.get("HOME"),
        id(cfg),
        id(parser),
        sections,
        *(tuple((raw.get(name) or {}).items()) for name in _WATCHED_SECTIONS),
    )


def _interpolates(inputs: tuple[Any, ...]) -> bool:
    """Whether a watched section uses ``${VAR}``, whose value may change at any time."""
    return any("$" in str(v) for items in inputs[-len(_WATCHED_SECTIONS) :] for _, v in items)


def resolve_settings() -> Settings:
    """The settings in effect now (see the module docstring for the order and caching)."""
    global _cached
    inputs = _inputs()
    cached = _cached
    if inputs is not None and cached is not None and cached[0] == inputs:
        return cached[1]
    with _cache_lock:
        settings = _resolve()
        if inputs is not None and not _interpolates(inputs):
            _cached = (inputs, settings)
    return settings


def _resolve() -> Settings:
    return _resolve_explained()[0]


_Lookup = tuple[str, Callable[[], Any]]
#: settings read from options, then ``[artifact_store]``, then their defaults
_PLAIN_KEYS = (
    "checksum",
    "lock_timeout",
    "serializer",
    "cache_dir",
    "cache_max_bytes",
    "dedup",
    "task_lock",
    "task_lock_timeout",
)


def _first_hit(*lookups: _Lookup) -> tuple[Any, str]:
    """The first non-empty value and where it came from; ``(None, DEFAULT)`` if none."""
    for origin, get in lookups:
        value = get()
        if value:
            return value, origin
    return None, DEFAULT


def _cfg(section: str, key: str) -> _Lookup:
    return f"luigi.cfg [{section}] {key}", lambda: luigi_get(section, key)


def _resolve_explained() -> tuple[Settings, dict[str, str]]:
    """The settings and, per setting, where its value came from (see ``explain``)."""
    check_config()
    home = default_home()
    db, db_from = _first_hit(
        ("options.set('database_url')", lambda: options.get("database_url")),
        (f"environment {ENV_DATABASE_URL}", lambda: os.environ.get(ENV_DATABASE_URL, "").strip()),
        _cfg(SECTION, "db_connection"),
        _cfg("task_history", "db_connection"),
    )
    storage_dir, dir_from = _first_hit(
        ("options.set('artifact_storage_dir')", lambda: options.get("artifact_storage_dir")),
        (f"environment {ENV_STORAGE_DIR}", lambda: os.environ.get(ENV_STORAGE_DIR, "").strip()),
        _cfg(SECTION, "artifact_storage_dir"),
    )
    storage_options = options.get("storage_options")
    opts_from = "options.set('storage_options')"
    if storage_options is None:
        raw, opts_from = _first_hit(_cfg(SECTION, "storage_options"))
        storage_options = _parse_storage_options(raw) if raw else {}
    if not db:
        home.mkdir(parents=True, exist_ok=True)
        db = f"sqlite:///{home / 'db.sqlite'}"
    if not storage_dir:
        storage_dir = str(home / "artifacts")
    extra: dict[str, Any] = {}
    origins = {
        "database_url": db_from,
        "artifact_storage_dir": dir_from,
        "storage_options": opts_from,
    }
    for key in _PLAIN_KEYS:
        extra[key], origins[key] = _first_hit(
            (f"options.set({key!r})", partial(options.get, key)), _cfg(SECTION, key)
        )
    settings = Settings.create(db, storage_dir, storage_options, **extra)
    return settings, origins


def explain() -> tuple[Settings, dict[str, str]]:
    """The settings in effect and where each came from, luigi.cfg entries naming their file.

    For ``linea-luigi doctor``; resolves afresh (uncached) and reads the
    configuration files again, so it is not for hot paths.
    """
    settings, origins = _resolve_explained()
    for setting, origin in origins.items():
        if origin.startswith("luigi.cfg ["):
            section, key = origin[len("luigi.cfg [") :].split("] ")
            path = file_defining(section, key)
            origins[setting] = (
                f"{origin} ({path})"
                if path
                else f"command line --{section}-{key}".replace("_", "-")
            )
    return settings, origins
