"""Rendering for the command line: streamed tables, streamed JSON arrays, lineage trees.

Kept apart from ``cli`` so the commands read as "ask the store, hand the
records to a renderer", and so rendering is testable without click. Listings
are streamed: a store with 100k names is never held in memory at once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from .artifact import Artifact, human_size
from .runs import TaskRun

#: rows buffered to size the columns before the rest is streamed
WIDTH_SAMPLE = 500

TABLE_COLUMNS = ("NAME", "VERSION", "CREATED", "SIZE", "TASK")


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``: unambiguous in JSON and across machines."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def short_time(moment: datetime) -> str:
    """``2026-11-25 14:20:36Z``: a table cell, seconds precision, UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def artifact_json(a: Artifact) -> dict[str, Any]:
    """The JSON object of one artifact (stable keys, ISO 8601 UTC times)."""
    return {
        "name": a.name,
        "version": a.version,
        "created_at": iso_utc(a.created_at),
        "size_bytes": a.size_bytes,
        "digest": a.digest,
        "task_id": a.task_id,
        "task_family": a.task_family,
        "identity_key": a.identity_key,
        "params": dict(a.params) if a.params is not None else None,
        "uri": a.uri,
        "serializer": a.serializer,
        "python_version": a.python_version,
    }


def detail_json(
    a: Artifact,
    upstream: Iterable[Artifact],
    downstream: Iterable[Artifact],
    runs: Iterable[TaskRun],
    aliases: Iterable[str],
) -> dict[str, Any]:
    """One version with its lineage, aliases and task runs (``show --json``, the browser API)."""
    doc = artifact_json(a)
    doc["upstream"] = [{"name": u.name, "version": u.version} for u in upstream]
    doc["downstream"] = [{"name": d.name, "version": d.version} for d in downstream]
    doc["aliases"] = list(aliases)
    doc["runs"] = [
        {
            "record_id": r.record_id,
            "status": r.status,
            "host": r.host,
            "scheduled_at": iso_utc(r.scheduled_at),
            "started_at": iso_utc(r.started_at),
            "finished_at": iso_utc(r.finished_at),
            "failed_at": iso_utc(r.failed_at),
        }
        for r in runs
    ]
    return doc


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
