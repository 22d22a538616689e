"""Resolve where artifacts live: one frozen ``Settings`` for the whole package.

Lookup order, first hit wins, key by key:

1. ``linea_luigi.options.set(key, value)`` in this process;
2. environment: ``LINEA_LUIGI_DATABASE_URL``, ``LINEA_LUIGI_ARTIFACT_STORAGE_DIR``
   (storage_options deliberately have no variable: credentials come through the
   provider's own mechanism, e.g. ``AWS_PROFILE``);
3. luigi.cfg ``[artifact_store]`` keys ``db_connection``, ``artifact_storage_dir``,
   ``storage_options`` (a JSON object), ``checksum`` (``blake3``, the default, or
   ``sha256``), ``lock_timeout`` (seconds a write waits for another process's
   lock, 60 by default), read through Luigi's own configuration,
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

import difflib
import json
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from .db.engine import DEFAULT_LOCK_TIMEOUT_S
from .errors import ConfigError
from .hashing import DEFAULT_DIGEST, DIGEST_ALGORITHMS
from .options import options
from .urls import mask_url, parse_db_url

ENV_DATABASE_URL = "LINEA_LUIGI_DATABASE_URL"
ENV_STORAGE_DIR = "LINEA_LUIGI_ARTIFACT_STORAGE_DIR"
SECTION = "artifact_store"
#: the keys ``[artifact_store]`` accepts
SECTION_KEYS = (
    "db_connection",
    "artifact_storage_dir",
    "storage_options",
    "checksum",
    "lock_timeout",
)
DEFAULT = "default"
#: longest lock wait accepted, in seconds (a day; PostgreSQL's own limit is ~24 days)
MAX_LOCK_TIMEOUT_S = 86400.0


class ConfigWarning(UserWarning):
    """The configuration is probably not what was meant (e.g. a misspelt section name)."""


class _Everything:
    """A set that holds every key: Luigi's unconsumed-key check skips all (we check them)."""

    def __contains__(self, item: object) -> bool:
        return True


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

    def __post_init__(self) -> None:
        if not str(self.storage_dir).strip():
            raise ConfigError("artifact_storage_dir is empty: set a folder path or fsspec URL.")
        if self.checksum not in DIGEST_ALGORITHMS:
            raise ConfigError(
                f"Unknown checksum {self.checksum!r}; choose one of {', '.join(DIGEST_ALGORITHMS)} "
                f"([{SECTION}] checksum or options.set('checksum', ...))."
            )

    @classmethod
    def create(
        cls,
        database_url: str | URL,
        storage_dir: str | os.PathLike[str],
        storage_options: dict[str, Any] | None = None,
        checksum: str | None = None,
        lock_timeout: float | str | None = None,
    ) -> Settings:
        """Build settings from raw values, normalising the URL."""
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
        return cls(
            parse_db_url(database_url),
            os.fspath(storage_dir),
            dict(storage_options or {}),
            (checksum or DEFAULT_DIGEST).strip().lower(),
            parse_lock_timeout(lock_timeout),
        )

    def cache_key(self) -> tuple[str, ...]:
        """A hashable identity, including the (unprinted) password and options."""
        return (
            self.database_url.render_as_string(hide_password=False),
            self.storage_dir,
            json.dumps(self.storage_options, sort_keys=True, default=str),
            self.checksum,
            repr(self.lock_timeout),
        )

    def __repr__(self) -> str:
        opts = sorted(self.storage_options)
        return (
            f"Settings(database_url={mask_url(self.database_url)!r}, "
            f"storage_dir={mask_url(self.storage_dir)!r}, storage_options keys={opts}, "
            f"checksum={self.checksum!r}, lock_timeout={self.lock_timeout!r})"
        )


def parse_lock_timeout(value: float | str | None) -> float:
    """Seconds from a number or its text; None is the default. Out of range: ``ConfigError``."""
    if value is None:
        return DEFAULT_LOCK_TIMEOUT_S
    problem = f"lock_timeout must be a number of seconds above 0 and at most {MAX_LOCK_TIMEOUT_S:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{problem}, got {type(value).__name__}.")
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{problem}, got {str(value)[:40]!r}.") from None
    if not 0 < seconds <= MAX_LOCK_TIMEOUT_S:  # NaN fails this too
        raise ConfigError(f"{problem}, got {str(value)[:40]!r}.")
    return seconds


def _luigi_get(section: str, key: str) -> str | None:
    """Read one luigi.cfg key; ``[artifact_store]`` also honours command-line overrides."""
    import luigi.configuration

    if section == SECTION:
        value = _artifact_store_config()[key]
    else:
        value = luigi.configuration.get_config().get(section, key, None)  # type: ignore[no-untyped-call]
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _artifact_store_config() -> dict[str, Any]:
    try:
        inst = _config_class()()
    except Exception as exc:  # luigi raises plain exceptions for bad interpolation
        raise ConfigError(f"Cannot read luigi.cfg section [{SECTION}]: {exc}") from exc
    return {
        "db_connection": inst.db_connection,
        "artifact_storage_dir": inst.artifact_storage_dir,
        "storage_options": inst.storage_options,
        "checksum": inst.checksum,
        "lock_timeout": inst.lock_timeout,
    }


_CONFIG_CLASS: Any = None


def _config_class() -> Any:
    """The ``[artifact_store]`` luigi.Config class, defined on first use.

    Defined lazily so that the store layer does not import Luigi; the Luigi
    integration registers it at import (``register_luigi_config``), because
    Luigi builds its command-line parser from the Config classes registered by
    then, and ``--artifact-store-db-connection`` must parse.
    """
    global _CONFIG_CLASS
    if _CONFIG_CLASS is None:
        import luigi

        class artifact_store(luigi.Config):
            """luigi.cfg section ``[artifact_store]`` of linea_luigi."""

            # Luigi's warning would print an unknown key's value; ``_check_keys`` names the key
            ignore_unconsumed = _Everything()

            db_connection = luigi.OptionalParameter(
                default=None, description="SQLAlchemy URL of the artifact metadata database"
            )
            artifact_storage_dir = luigi.OptionalParameter(
                default=None, description="Folder or fsspec URL where artifact values are stored"
            )
            storage_options = luigi.OptionalParameter(
                default=None, description="JSON object of fsspec storage options"
            )
            checksum = luigi.OptionalParameter(
                default=None, description="Digest of new values: blake3 (default) or sha256"
            )
            lock_timeout = luigi.OptionalParameter(
                default=None,
                description="Seconds a write waits for another process's lock (default 60)",
            )

        _CONFIG_CLASS = artifact_store
    return _CONFIG_CLASS


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
    raw = getattr(cfg, "_sections", None)  # ConfigParser keeps uninterpolated values here
    if raw is None:
        raw = getattr(cfg, "data", None)  # Luigi's TOML parser
    if not isinstance(raw, dict):
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


def _first_hit(*lookups: _Lookup) -> tuple[Any, str]:
    """The first non-empty value and where it came from; ``(None, DEFAULT)`` if none."""
    for origin, get in lookups:
        value = get()
        if value:
            return value, origin
    return None, DEFAULT


def _cfg(section: str, key: str) -> _Lookup:
    return f"luigi.cfg [{section}] {key}", lambda: _luigi_get(section, key)


def _resolve_explained() -> tuple[Settings, dict[str, str]]:
    """The settings and, per setting, where its value came from (see ``explain``)."""
    _check_config()
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
    checksum, checksum_from = _first_hit(
        ("options.set('checksum')", lambda: options.get("checksum")),
        _cfg(SECTION, "checksum"),
    )
    lock_timeout, lock_timeout_from = _first_hit(
        ("options.set('lock_timeout')", lambda: options.get("lock_timeout")),
        _cfg(SECTION, "lock_timeout"),
    )
    settings = Settings.create(db, storage_dir, storage_options, checksum, lock_timeout)
    return settings, {
        "database_url": db_from,
        "artifact_storage_dir": dir_from,
        "storage_options": opts_from,
        "checksum": checksum_from,
        "lock_timeout": lock_timeout_from,
    }


def explain() -> tuple[Settings, dict[str, str]]:
    """The settings in effect and where each came from, luigi.cfg entries naming their file.

    For ``linea-luigi doctor``; resolves afresh (uncached) and reads the
    configuration files again, so it is not for hot paths.
    """
    settings, origins = _resolve_explained()
    for setting, origin in origins.items():
        if origin.startswith("luigi.cfg ["):
            section, key = origin[len("luigi.cfg [") :].split("] ")
            path = _file_defining(section, key)
            origins[setting] = (
                f"{origin} ({path})"
                if path
                else f"command line --{section}-{key}".replace("_", "-")
            )
    return settings, origins


def _config_files() -> list[str]:
    """The luigi.cfg files Luigi read, in reading order (later ones win)."""
    import luigi.configuration

    parser = type(luigi.configuration.get_config())  # type: ignore[no-untyped-call]
    paths = [str(p) for p in getattr(parser, "_config_paths", [])]
    return [os.path.abspath(p) for p in paths if os.path.isfile(p)]


def _file_defining(section: str, key: str) -> str | None:
    """The last config file that sets ``[section] key`` (what Luigi reads), or None."""
    import configparser

    found = None
    for path in _config_files():
        reader = configparser.RawConfigParser(strict=False)
        try:
            reader.read(path)
        except configparser.Error:
            continue
        if reader.has_option(section, key) or reader.has_option(section, key.replace("_", "-")):
            found = path
    return found


def _raw_sections() -> dict[str, Any]:
    """Luigi's parsed configuration, uninterpolated: section name to its raw items."""
    import luigi.configuration

    cfg = luigi.configuration.get_config()  # type: ignore[no-untyped-call]
    raw = getattr(cfg, "_sections", None)
    if raw is None:
        raw = getattr(cfg, "data", None)
    return raw if isinstance(raw, dict) else {}


def _squash(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


_OURS = {_squash(SECTION), "artifactsstore", "linealuigi", "artifactstorage"}


#: Luigi's ``${VAR}`` interpolation (its parser's own syntax); matched on config text only
_ENV_REFERENCE = re.compile(r"\$\{([^}]+)\}")
#: the keys we read, per section, whose ``${VAR}`` references must resolve
_READ_KEYS = {SECTION: SECTION_KEYS, "task_history": ("db_connection",)}


def _check_variables(sections: dict[str, Any]) -> None:
    """Refuse a ``${VAR}`` we would read whose variable is unset, naming it (never the value)."""
    for section, keys in _READ_KEYS.items():
        items = sections.get(section)
        if not isinstance(items, dict):
            continue
        for key, raw in items.items():
            if str(key).replace("-", "_") not in keys:
                continue
            for variable in _ENV_REFERENCE.findall(str(raw)):
                if variable not in os.environ:
                    raise ConfigError(
                        f"luigi.cfg [{section}] {key} refers to the environment variable "
                        f"${{{variable}}}, which is not set. Set {variable} in the environment "
                        "of every process that runs the pipeline, or write the value itself."
                    )


def _check_config() -> None:
    """Refuse unknown ``[artifact_store]`` keys and unset ``${VAR}`` references; warn about
    look-alike sections. No values shown."""
    sections = _raw_sections()
    _check_variables(sections)
    ours = sections.get(SECTION)
    if isinstance(ours, dict):
        for key in ours:
            canonical = str(key).replace("-", "_")
            if canonical in SECTION_KEYS:
                continue
            close = difflib.get_close_matches(canonical, SECTION_KEYS, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown key {key!r} in luigi.cfg section [{SECTION}].{hint} "
                f"Accepted keys: {', '.join(SECTION_KEYS)}."
            )
    for name, items in sections.items():
        if name == SECTION:
            continue
        squashed = _squash(str(name))
        looks_like = (
            squashed in _OURS
            or difflib.SequenceMatcher(None, squashed, _squash(SECTION)).ratio() >= 0.85
        )
        has_our_key = isinstance(items, dict) and "artifact_storage_dir" in items
        if looks_like or has_our_key:
            warnings.warn(
                f"luigi.cfg has a section [{name}] that looks like linea_luigi's "
                f"[{SECTION}], which is read instead; [{name}] is ignored. Rename it to "
                f"[{SECTION}] if it was meant for linea_luigi.",
                ConfigWarning,
                stacklevel=3,
            )


def register_luigi_config() -> None:
    """Register the ``[artifact_store]`` section with Luigi (idempotent)."""
    _config_class()
