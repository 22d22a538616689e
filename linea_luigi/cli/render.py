"""Rendering for the command line: streamed tables, streamed JSON arrays, lineage trees.

Kept apart from the commands so they read as "ask the store, hand the records
to a renderer", and so rendering is testable without click. Listings are
streamed: a store with 100k names is never held in memory at once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..model import Artifact, human_size
from ..web.documents import short_time

#: rows buffered to size the columns before the rest is streamed
WIDTH_SAMPLE = 500

TABLE_COLUMNS = ("NAME", "VERSION", "CREATED", "SIZE", "TASK")


def table_row(a: Artifact) -> tuple[str, ...]:
    return (
        a.name,
        str(a.version),
        short_time(a.created_at),
        human_size(a.size_bytes),
        a.task_id or "-",
    )


def stream_table(
    rows: Iterable[Sequence[str]], header: Sequence[str], write: Callable[[str], None]
) -> int:
    """Write an aligned table; widths come from the first ``WIDTH_SAMPLE`` rows.

    Later, longer cells push their line out rather than forcing every row to
    be held back. Returns the number of rows written.
    """
    it = iter(rows)
    sample = list(itertools.islice(it, WIDTH_SAMPLE))
    widths = [len(h) for h in header]
    for row in sample:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    write(line(header))
    count = 0
    for row in itertools.chain(sample, it):
        write(line(row))
        count += 1
    return count


def stream_json_array(objects: Iterable[dict[str, Any]], write: Callable[[str], None]) -> None:
    """One JSON array, written object by object (valid JSON even when empty)."""
    write("[")
    first = True
    for obj in objects:
        write(("\n  " if first else ",\n  ") + json.dumps(obj, default=str, sort_keys=True))
        first = False
    write("\n]" if not first else "]")


def draw_tree(
    root: Artifact,
    children: Callable[[Artifact], list[Artifact]],
    depth: int | None,
) -> Iterator[str]:
    """Lines of a lineage tree under ``root``, ``depth`` levels deep (None: all).

    A node reached again (lineage is a DAG, not a tree) is drawn once in full
    and later marked ``(see above)``, so shared ancestry costs no blow-up.
    """
    seen: set[tuple[str, int]] = set()

    def label(a: Artifact) -> str:
        task = f"  [{a.task_id}]" if a.task_id else ""
        return f"{a.name} v{a.version}{task}"

    def walk(node: Artifact, prefix: str, level: int) -> Iterator[str]:
        if depth is not None and level >= depth:
            return
        kids = children(node)
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            key = (kid.name, kid.version)
            again = key in seen
            yield (
                prefix
                + ("└── " if last else "├── ")
                + label(kid)
                + ("  (see above)" if again else "")
            )
            if not again:
                seen.add(key)
                yield from walk(kid, prefix + ("    " if last else "│   "), level + 1)

    seen.add((root.name, root.version))
    yield label(root)
    yield from walk(root, "", 0)
