"""Reading luigi.cfg: the ``[artifact_store]`` Config class, raw sections, checks.

Luigi's Config machinery gives ``${VAR}`` interpolation and command-line
overrides (``--artifact-store-db-connection``); the raw, uninterpolated sections
serve the cheap "did anything change" test of ``resolve`` and the checks here.
No configured value is ever part of a message: Luigi's own warning about
unconsumed keys, which prints the value, is switched off for the section
(``ignore_unconsumed``), since ``check_config`` names unknown keys itself.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from typing import Any

from ..errors import ConfigError
from .settings import SECTION

#: the keys ``[artifact_store]`` accepts
SECTION_KEYS = (
    "db_connection",
    "artifact_storage_dir",
    "storage_options",
    "checksum",
    "lock_timeout",
    "serializer",
    "cache_dir",
    "cache_max_bytes",
    "dedup",
    "task_lock",
    "task_lock_timeout",
)


class ConfigWarning(UserWarning):
    """The configuration is probably not what was meant (e.g. a misspelt section name)."""


class _Everything:
    """A set that holds every key: Luigi's unconsumed-key check skips all (we check them)."""

    def __contains__(self, item: object) -> bool:
        return True


def luigi_get(section: str, key: str) -> str | None:
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
        inst = config_class()()
    except Exception as exc:  # luigi raises plain exceptions for bad interpolation
        raise ConfigError(f"Cannot read luigi.cfg section [{SECTION}]: {exc}") from exc
    return {
        "db_connection": inst.db_connection,
        "artifact_storage_dir": inst.artifact_storage_dir,
        "storage_options": inst.storage_options,
        "checksum": inst.checksum,
        "lock_timeout": inst.lock_timeout,
        "serializer": inst.serializer,
        "cache_dir": inst.cache_dir,
        "cache_max_bytes": inst.cache_max_bytes,
        "dedup": inst.dedup,
        "task_lock": inst.task_lock,
        "task_lock_timeout": inst.task_lock_timeout,
    }


_CONFIG_CLASS: Any = None


def config_class() -> Any:
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
            serializer = luigi.OptionalParameter(
                default=None,
                description="How values are stored: auto (default), parquet, npy or cloudpickle",
            )
            cache_dir = luigi.OptionalParameter(
                default=None,
                description="Local cache of remote values: auto (default), none, or a folder",
            )
            cache_max_bytes = luigi.OptionalParameter(
                default=None, description="Cap of the local cache, e.g. 10GiB"
            )
            dedup = luigi.OptionalParameter(
                default=None, description="Store a value identical to a stored one once (true)"
            )
            task_lock = luigi.OptionalParameter(
                default=None, description="Run each mixin task under a database lock (true)"
            )
            task_lock_timeout = luigi.OptionalParameter(
                default=None, description="Seconds a task waits for that lock (none: no limit)"
            )

        _CONFIG_CLASS = artifact_store
    return _CONFIG_CLASS


def _config_files() -> list[str]:
    """The luigi.cfg files Luigi read, in reading order (later ones win)."""
    import luigi.configuration

    parser = type(luigi.configuration.get_config())  # type: ignore[no-untyped-call]
    paths = [str(p) for p in getattr(parser, "_config_paths", [])]
    return [os.path.abspath(p) for p in paths if os.path.isfile(p)]


def file_defining(section: str, key: str) -> str | None:
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


def raw_sections(cfg: Any = None) -> dict[str, Any] | None:
    """Luigi's parsed configuration, uninterpolated: section name to its raw items.

    ``cfg``: Luigi's parser if the caller holds it. None when the parser keeps
    no such mapping (then nothing can be checked cheaply).
    """
    if cfg is None:
        import luigi.configuration

        cfg = luigi.configuration.get_config()  # type: ignore[no-untyped-call]
    raw = getattr(cfg, "_sections", None)  # ConfigParser keeps uninterpolated values here
    if raw is None:
        raw = getattr(cfg, "data", None)  # Luigi's TOML parser
    return raw if isinstance(raw, dict) else None


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


def check_config() -> None:
    """Refuse unknown ``[artifact_store]`` keys and unset ``${VAR}`` references; warn about
    look-alike sections. No values shown."""
    sections = raw_sections() or {}
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
    config_class()
