"""Matching recorded Luigi task parameters for ``ArtifactStore.find``.

Parameters are recorded as Luigi serializes them (strings), so a value is
compared by its serialized form: ``str`` as is, ``int``/``float``/``bool`` by
``str()``, ``date`` by ``isoformat()``, ``dict``/``list`` as JSON structures.
Matching happens in Python, after a query by name, because JSON equality
differs between SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from ..errors import InvalidArgumentError

Matcher = Callable[[Any], bool]


def matchers(params: Mapping[str, Any]) -> dict[str, Matcher]:
    """A test per parameter; ``InvalidArgumentError`` for a value that cannot be compared."""
    return {key: _matcher(key, value) for key, value in params.items()}


def matches(recorded: Mapping[str, Any] | None, wanted: Mapping[str, Matcher]) -> bool:
    """Whether ``recorded`` parameters hold every one of ``wanted`` with a matching value."""
    return recorded is not None and all(
        key in recorded and match(recorded[key]) for key, match in wanted.items()
    )


def _matcher(key: str, value: Any) -> Matcher:
    """A test of a recorded (Luigi-serialized) parameter against ``value``."""
    if isinstance(value, (dict, list, tuple)):
        expected = json.loads(json.dumps(value))

        def same_structure(recorded: Any) -> bool:
            try:
                parsed = json.loads(recorded) if isinstance(recorded, str) else recorded
            except ValueError:
                return False
            return bool(parsed == expected)

        return same_structure
    if isinstance(value, (date, datetime)):
        text = value.isoformat()
    elif isinstance(value, (str, int, float)):  # bool is an int: str(True) == "True"
        text = str(value)
    else:
        raise InvalidArgumentError(
            f"Cannot compare parameter {key}={value!r}: pass a str, int, float, bool, date, "
            "dict or list (or the string Luigi's Parameter.serialize gives)."
        )
    return lambda recorded: recorded == text or str(recorded) == text
