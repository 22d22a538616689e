"""The artifact browser served by ``linea-luigid``: page latency over 100k artifacts."""

from __future__ import annotations

from typing import Any

from ..harness import LINEA, Context, Section, new_cells, progress
from .lookup import database, under

PAGES = {
    "first": ("/artifacts, first page", "< 300 ms"),
    "middle": ("/artifacts, a page in the middle (?after=)", "info"),
    "family": ("/artifacts?family= (filter on every latest row)", "info"),
    "search": ("/artifacts?q= (name search over every name)", "info"),
    "version": ("/artifacts/<name>/<version>", "info"),
    "api": ("/api/artifacts?limit=1000", "info"),
}
LIMIT_MS = 300.0
BACKENDS = ("SQLite", "PostgreSQL")


def run(ctx: Context) -> list[Section]:
    rows, calls = ctx.sizes.lookup_rows, max(5, ctx.sizes.lookup_calls // 100)
    sections: list[Section] = []
    for backend in BACKENDS:
        cells = {page: new_cells("ms", [LINEA], ctx) for page in PAGES}
        progress(f"[browse {backend}] populating {rows} names")
        try:
            with database(ctx, backend) as (url, storage):
                ctx.child("browse:populate", {"db_url": url, "storage_dir": storage, "rows": rows})
                for rep in range(ctx.reps):
                    progress(f"[browse {backend}] rep {rep + 1}/{ctx.reps}")
                    args: dict[str, Any] = {"db_url": url, "rows": rows, "calls": calls}
                    result = ctx.record(cells["first"][LINEA], "browse:measure", args)
                    for page in PAGES:
                        if result is not None and page != "first":
                            cells[page][LINEA].add(result, page)
        except Exception as exc:  # PostgreSQL unreachable, populate failed, ...
            for c in cells.values():
                ctx.fail(c[LINEA], f"{type(exc).__name__}: {exc}")
        note = f"{rows:,} names, median of {calls} GETs after a warm-up, real linea-luigid"
        for page, (label, target) in PAGES.items():
            sections.append(
                Section(
                    "browse",
                    f"{label}, {rows // 1000}k artifacts, {backend}",
                    cells[page],
                    base=None,
                    target=target,
                    check=under(LIMIT_MS) if page == "first" else None,
                    notes=note,
                )
            )
    return sections
