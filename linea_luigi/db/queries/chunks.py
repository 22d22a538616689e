"""How many bound values one ``IN (...)`` list may hold: the store, gc and aliases share it.

Lists of ids, names, keys or locations can be as long as a store is large;
SQLite and PostgreSQL both cap the parameters of one statement, so long lists
go in chunks of ``PER_QUERY``, well inside every database's limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

#: bound values per ``IN`` list (read at each call, so a test can make it small)
PER_QUERY = 500


def chunked(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``PER_QUERY``."""
    size = PER_QUERY
    for start in range(0, len(items), size):
        yield items[start : start + size]
