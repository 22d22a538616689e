"""Strict parsing of user-supplied names and version arguments.

LineaPy silently turned ``"1.9"`` into version 1; here anything that is not a
non-negative int or one of the allowed keywords is refused with a message that
lists what is accepted.
"""

from __future__ import annotations

import numbers
from typing import Literal

from .errors import InvalidArgumentError

LATEST = "latest"
ALL = "all"
MAX_NAME_LENGTH = 255

VersionSpec = int | Literal["latest", "all"]


def parse_version(version: object, *, allow_all: bool = False) -> int | str:
    """Return a non-negative int, ``"latest"`` (also for None) or, if allowed, ``"all"``."""
    if version is None:
        return LATEST
    if isinstance(version, bool):
        pass  # True is an int to Python, never a version to us
    elif isinstance(version, numbers.Integral):
        if int(version) >= 0:
            return int(version)
    elif isinstance(version, str) and version in ((LATEST, ALL) if allow_all else (LATEST,)):
        return version
    accepted = "a non-negative int, 'latest'" + (" or 'all'" if allow_all else "")
    raise InvalidArgumentError(f"Invalid version {version!r}: expected {accepted}.")


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
