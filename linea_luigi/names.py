"""Strict parsing of user-supplied names, versions, counts and aliases.

LineaPy silently turned ``"1.9"`` into version 1; here anything that is not a
non-negative int or one of the allowed keywords is refused with a message that
lists what is accepted. Numbers typed as text are ASCII digits only
(``str.isdigit`` and ``int`` also take '²', '٣', ' 1' or '1_0') and every number
is checked against what the database column holds, so an out-of-range one is a
bad argument rather than an overflow deep in the driver.
"""

from __future__ import annotations

import numbers
import re
import reprlib
from typing import Literal

from .errors import InvalidArgumentError

LATEST = "latest"
ALL = "all"
MAX_NAME_LENGTH = 255
#: the largest version: ``ll_artifacts.version`` is an INTEGER (int4 on PostgreSQL)
MAX_VERSION = 2**31 - 1
#: the largest limit, offset or count: the databases' BIGINT
MAX_COUNT = 2**63 - 1

VersionSpec = int | Literal["latest", "all"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxlong = 60


def parse_version(version: object, *, allow_all: bool = False) -> int | str:
    """Return a non-negative int, ``"latest"`` (also for None) or, if allowed, ``"all"``."""
    if version is None:
        return LATEST
    number = _integral(version)
    if number is not None and 0 <= number <= MAX_VERSION:
        return number
    if isinstance(version, str) and version in ((LATEST, ALL) if allow_all else (LATEST,)):
        return version
    accepted = f"a non-negative int (at most {MAX_VERSION}), 'latest'"
    accepted += " or 'all'" if allow_all else ""
    raise InvalidArgumentError(f"Invalid version {_shown(version)}: expected {accepted}.")


def parse_version_text(text: str, *, allow_all: bool = False) -> int | str:
    """A version typed as text (CLI, URL): ASCII digits in range, ``latest`` or ``all``.

    Digits of any script are read as a number, so '²' is refused as one (and
    never mistaken for a keyword or an alias, which cannot be all digits).
    """
    if text.isdigit():
        return parse_count(text, "version", maximum=MAX_VERSION)
    return parse_version(text, allow_all=allow_all)


def check_count(value: object, what: str, *, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """An int (not a bool, not text) from ``minimum`` to ``maximum``: the Python API's numbers."""
    number = _integral(value)
    if number is None or not minimum <= number <= maximum:
        raise _bad_count(value, what, minimum, maximum)
    return number


def parse_count(value: str | int, what: str, *, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
    """``check_count`` for an int, or for text of ASCII digits only (CLI options, URLs)."""
    if not isinstance(value, str):
        return check_count(value, what, minimum=minimum, maximum=maximum)
    digits = value.lstrip("0") or "0"
    # the length test first: int() refuses thousands of digits with a ValueError
    if value.isascii() and value.isdigit() and len(digits) <= len(str(maximum)):
        number = int(digits)
        if minimum <= number <= maximum:
            return number
    raise _bad_count(value, what, minimum, maximum)


def _integral(value: object) -> int | None:
    """``int(value)`` for an integral number; None for anything else, bools included."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return None  # True is an int to Python, never a number to us


def _bad_count(value: object, what: str, minimum: int, maximum: int) -> InvalidArgumentError:
    form = " in ASCII digits" if isinstance(value, str) else ""
    return InvalidArgumentError(
        f"{what} must be a whole number from {minimum} to {maximum}{form}, got {_shown(value)}."
    )


def _shown(value: object) -> str:
    """``repr(value)``, shortened: a 10,000-digit argument is not echoed whole."""
    return _REPR.repr(value)


def check_name(name: object) -> str:
    """Validate an artifact name: a non-empty printable string of at most 255 characters."""
    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"Artifact names are strings, got {type(name).__name__} {name!r}."
        )
    if not name.strip():
        raise InvalidArgumentError("Artifact names must not be empty or blank.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"Artifact name of {len(name)} characters is too long (at most {MAX_NAME_LENGTH})."
        )
    if not name.isprintable():
        raise InvalidArgumentError(f"Artifact name {name!r} contains control characters.")
    return name


#: between a name and an alias: ``"model@production"``
SEPARATOR = "@"
_FORBIDDEN = re.compile(r"[@:\s]")


def check_alias(alias: object) -> str:
    """Validate an alias: a non-empty printable string without ``@``, ``:`` or whitespace."""
    if not isinstance(alias, str):
        raise InvalidArgumentError(f"Aliases are strings, got {type(alias).__name__} {alias!r}.")
    if not alias:
        raise InvalidArgumentError("An alias must not be empty.")
    if len(alias) > MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"Alias of {len(alias)} characters is too long (at most {MAX_NAME_LENGTH})."
        )
    if _FORBIDDEN.search(alias) or not alias.isprintable():
        raise InvalidArgumentError(
            f"Invalid alias {alias!r}: '@', ':', whitespace and control characters are not "
            "allowed (they would make 'name@alias' ambiguous)."
        )
    if alias.isdigit() or alias in (LATEST, ALL):
        raise InvalidArgumentError(
            f"Invalid alias {alias!r}: it would read as a version; choose a word such as "
            "'production'."
        )
    return alias


def split_ref(ref: str) -> tuple[str, str] | None:
    """``"model@production"`` → ``("model", "production")``; None without ``@``."""
    if SEPARATOR not in ref:
        return None
    name, _, alias = ref.rpartition(SEPARATOR)
    return (name, alias) if name.strip() and alias else None
