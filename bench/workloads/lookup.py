"""exists(name, key=...) and latest_version(name) among many artifacts, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import LINEA, Cell, Check, Context, Section, new_cells, progress, verdict
from ..pg import pg_database

OPS = {
    "exists_key": "exists(name, key=k), k present",
    "latest": "latest_version(name)",
    "exists_missing": "exists(name, key=k), k absent",
}
LIMIT_US = {"SQLite": 300.0, "PostgreSQL": 1000.0}


@contextmanager
def database(ctx: Context, backend: str) -> Iterator[tuple[str, str]]:
    """(db_url, storage_dir) of a fresh, empty store on ``backend``."""
    with ctx.scratch("lookup") as root:
        if backend == "SQLite":
            yield f"sqlite:///{root}/meta.sqlite", f"{root}/artifacts"
        else:
            with pg_database() as url:
                yield url, f"{root}/artifacts"


def under(limit: float) -> Check:
    """Check "the median is below ``limit``" (a latency target in the cell's unit)."""

    def check(cells: dict[str, Cell]) -> str:
        m = cells[LINEA].median
        return verdict(None if m is None else m < limit)

    return check


def run(ctx: Context) -> list[Section]:
    rows, calls = ctx.sizes.lookup_rows, ctx.sizes.lookup_calls
    sections: list[Section] = []
    for backend, limit in LIMIT_US.items():
        cells = {op: new_cells("µs", [LINEA], ctx) for op in OPS}
        progress(f"[lookup {backend}] populating {rows} rows")
        try:
            with database(ctx, backend) as (url, storage):
                setup = ctx.child(
                    "lookup:populate", {"db_url": url, "storage_dir": storage, "rows": rows}
                )
                for rep in range(ctx.reps):
                    progress(f"[lookup {backend}] rep {rep + 1}/{ctx.reps}")
                    args: dict[str, Any] = {
                        "db_url": url,
                        "storage_dir": storage,
                        "rows": rows,
                        "calls": calls,
                    }
                    result = ctx.record(cells["exists_key"][LINEA], "lookup:measure", args)
                    for op in ("latest", "exists_missing"):
                        if result is not None:
                            cells[op][LINEA].add(result, op)
        except Exception as exc:  # PostgreSQL unreachable, populate failed, ...
            for c in cells.values():
                ctx.fail(c[LINEA], f"{type(exc).__name__}: {exc}")
            setup = {"rows": rows, "seconds": 0.0}
        note = f"{setup['rows']:,} rows, median of {calls} calls, fresh process, warm pool"
        for op, text in OPS.items():
            target = f"< {limit:.0f} µs" if op != "exists_missing" else "info"
            sections.append(
                Section(
                    "lookup",
                    f"{text}, {rows // 1000}k artifacts, {backend}",
                    cells[op],
                    base=None,
                    target=target,
                    check=under(limit) if op != "exists_missing" else None,
                    notes=note,
                )
            )
    return sections
