"""Parsing of the settings that are numbers, sizes, switches or folders.

Each accepts the Python value or its luigi.cfg text, and refuses anything else
with a ``ConfigError`` that names the setting and what it accepts; none of
them echoes more than the first 40 characters of a bad value.
"""

from __future__ import annotations

import math
import os
import re

from ..errors import ConfigError

#: ``cache_dir`` values that are not folders
CACHE_AUTO = "auto"
CACHE_OFF = "none"

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _shown(value: object) -> str:
    return repr(str(value)[:40])


def parse_bytes(value: int | str | None, setting: str) -> int | None:
    """A size in bytes: ``1073741824``, ``"10GiB"``, ``"500 MB"``; None when unset."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    problem = f"{setting} must be a size in bytes such as 10737418240, '10GiB' or '500MB'"
    if isinstance(value, bool):
        raise ConfigError(f"{problem}, got {value!r}.")
    if isinstance(value, int):
        number, unit = float(value), ""
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip().lower())):
        number, unit = float(match.group(1)), match.group(2)
    else:
        raise ConfigError(f"{problem}, got {_shown(value)}.")
    if unit not in _UNITS or not math.isfinite(number) or number < 1:
        raise ConfigError(f"{problem}, got {_shown(value)}.")
    size = int(number * _UNITS[unit])
    if size > 2**62:
        raise ConfigError(f"{problem} (at most 4 EiB), got {_shown(value)}.")
    return size


def parse_switch(value: bool | str | None, setting: str, default: bool) -> bool:
    """``true``/``false`` (also ``yes``/``no``, ``on``/``off``, ``1``/``0``); None: ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{setting} must be true or false, got {_shown(value)}.")


def parse_seconds(value: float | str | None, setting: str, maximum: float) -> float | None:
    """Seconds above 0 and at most ``maximum``; None (or ``none``) when unset."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    problem = f"{setting} must be a number of seconds above 0 and at most {maximum:g}, or none"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{problem}, got {type(value).__name__}.")
    try:
        seconds = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{problem}, got {_shown(value)}.") from None
    if not 0 < seconds <= maximum:  # NaN fails this too
        raise ConfigError(f"{problem}, got {_shown(value)}.")
    return seconds


def parse_cache_dir(value: str | os.PathLike[str] | None) -> str:
    """``auto`` (the default), ``none`` (no cache) or a folder, ``~`` expanded."""
    if value is None:
        return CACHE_AUTO
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(
            f"cache_dir must be a folder, 'auto' or 'none', got {type(value).__name__}."
        )
    text = os.fspath(value).strip()
    if text.lower() in ("", CACHE_AUTO):
        return CACHE_AUTO
    if text.lower() in (CACHE_OFF, "off", "false"):
        return CACHE_OFF
    if "://" in text:
        raise ConfigError(
            f"cache_dir must be a local folder (the cache keeps copies of remote values on this "
            f"machine), got {_shown(text)}."
        )
    return os.path.abspath(os.path.expanduser(text))
