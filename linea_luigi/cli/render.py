"""Rendering for the command line: streamed tables, streamed JSON arrays, lineage trees.

Kept apart from the commands so they read as "ask the store, hand the records
to a renderer", and so rendering is testable without click. Listings are
streamed: a store with 100k names is never held in memory at once. Text from
inside a value (a preview's cells) is made printable first: a cell must not
be able to send escape sequences to the user's terminal.
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
#: ``versions``: the table's columns and the aliases that point at each version
VERSION_COLUMNS = (*TABLE_COLUMNS, "ALIASES")
#: widest preview cell in a terminal (``show --json`` carries up to 200 characters)
PREVIEW_CELL = 32


def table_row(a: Artifact) -> tuple[str, ...]:
    return (
        a.name,
        str(a.version),
        short_time(a.created_at),
        human_size(a.size_bytes),
        a.task_id or "-",
    )


def version_row(a: Artifact, aliases: Sequence[str]) -> tuple[str, ...]:
    """``table_row`` and the aliases that point at the version (``-``: none)."""
    return (*table_row(a), ",".join(aliases) or "-")


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


def json_text(obj: dict[str, Any], indent: int | None = 2) -> str:
    """One JSON object as ``--json`` prints it: sorted keys, indented unless ``indent`` is None."""
    return json.dumps(obj, default=str, sort_keys=True, indent=indent)


def stream_json_array(objects: Iterable[dict[str, Any]], write: Callable[[str], None]) -> None:
    """One JSON array, written object by object, one per line (valid JSON even when empty)."""
    write("[")
    first = True
    for obj in objects:
        write(("\n  " if first else ",\n  ") + json_text(obj, indent=None))
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


def printable(text: str) -> str:
    """``text`` with control characters (escape sequences, newlines) written as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _cell(text: str) -> str:
    text = printable(text)
    return text if len(text) <= PREVIEW_CELL else text[: PREVIEW_CELL - 1] + "…"


def preview_lines(doc: dict[str, Any]) -> Iterator[str]:
    """The lines ``show`` prints for a preview document (``values.preview``)."""
    kind = doc.get("kind")
    if kind == "parquet":
        yield from _parquet_lines(doc)
    elif kind == "npy":
        order = "Fortran order" if doc["fortran_order"] else "C order"
        shape = " x ".join(str(n) for n in doc["shape"]) or "0-d"
        yield f"numpy array: dtype {printable(doc['dtype'])}, shape {shape}, {order}"
        if doc.get("note"):
            yield printable(doc["note"])
    else:
        yield printable(str(doc.get("note") or "no preview"))


def _parquet_lines(doc: dict[str, Any]) -> Iterator[str]:
    rows, total = doc["rows"], doc["columns_total"]
    yield f"{rows} row{'s' if rows != 1 else ''} x {total} column{'s' if total != 1 else ''}"
    yield "columns:"
    for column in doc["columns"]:
        yield f"  {printable(column['name'])}: {printable(column['type'])}"
    head = doc["head"]
    if head:
        yield "first rows:"
        header = [_cell(c["name"]) for c in doc["columns"]]
        lines: list[str] = []
        stream_table(([_cell(v) for v in row] for row in head), header, lines.append)
        yield from (f"  {line}" for line in lines)
        if any(len(printable(v)) > PREVIEW_CELL for row in head for v in row):
            yield f"note: cells cut to {PREVIEW_CELL} characters here (show --json has more)"
    for note in doc["truncated"]:
        yield f"note: {printable(note)}"
