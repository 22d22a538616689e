"""Concurrent small saves to one name from several processes, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import LINEA, PLAIN, Cell, Check, Context, Section, new_cells, progress, verdict
from ..pg import pg_database

WITH_START = "linea, incl. process start"
MIN_RATE = {"SQLite": 500.0, "PostgreSQL": 300.0}


@contextmanager
def database(ctx: Context, backend: str) -> Iterator[tuple[str, str]]:
    with ctx.scratch("concurrent") as root:
        if backend == "SQLite":
            yield f"sqlite:///{root}/meta.sqlite", f"{root}/artifacts"
        else:
            with pg_database() as url:
                yield url, f"{root}/artifacts"


def _check(limit: float) -> Check:
    def check(cells: dict[str, Cell]) -> str:
        c = cells[LINEA]
        if c.median is None:
            return "-"
        clean = all(e["errors"] == 0 and e["versions_ok"] for e in c.extras)
        return verdict(c.median >= limit and clean)

    return check


def _notes(cell: Cell, total: int) -> str:
    if not cell.extras:
        return ""
    errors = sum(e["errors"] for e in cell.extras)
    exact = sum(1 for e in cell.extras if e["versions_ok"])
    text = f"errors {errors}; versions 0..{total - 1} exact in {exact}/{len(cell.extras)} reps"
    first = next((e["first_error"] for e in cell.extras if e["first_error"]), "")
    return text + (f"; first error: {first[:100]}" if first else "")


def run(ctx: Context) -> list[Section]:
    procs, saves = ctx.sizes.procs, ctx.sizes.saves_per_proc
    shape: dict[str, Any] = {"procs": procs, "saves": saves}
    plain = new_cells("saves/s", [PLAIN], ctx)[PLAIN]
    linea = {b: new_cells("saves/s", [LINEA, WITH_START], ctx) for b in MIN_RATE}
    for rep in range(ctx.reps):
        progress(f"[concurrent] rep {rep + 1}/{ctx.reps} {PLAIN}")
        with ctx.scratch("concurrent") as root:
            args = {"peer": PLAIN, "db_url": "", "storage_dir": str(root), **shape}
            ctx.record(plain, "concurrent:run", args, key="rate")
        for backend, cells in linea.items():
            progress(f"[concurrent] rep {rep + 1}/{ctx.reps} {LINEA} {backend}")
            try:
                with database(ctx, backend) as (url, storage):
                    args = {"peer": LINEA, "db_url": url, "storage_dir": storage, **shape}
                    result = ctx.record(cells[LINEA], "concurrent:run", args, key="rate")
            except Exception as exc:  # PostgreSQL unreachable
                ctx.fail(cells[LINEA], f"{type(exc).__name__}: {exc}")
                result = None
            if result is not None:
                cells[WITH_START].add(result, "with_start")
                if result["errors"] or not result["versions_ok"]:
                    ctx.failures.append(f"concurrent {backend}: {result}")
    sections = []
    for backend, limit in MIN_RATE.items():
        cells = {PLAIN: plain, **linea[backend]}
        sections.append(
            Section(
                "concurrent",
                f"{procs} processes x {saves} saves to one name, {backend}",
                cells,
                base=None,
                target=f"≥ {limit:.0f} saves/s, 0 errors, versions exact",
                check=_check(limit),
                notes=_notes(linea[backend][LINEA], procs * saves)
                + "; plain = pickle.dump to distinct LocalTarget files (no versions, info)",
            )
        )
    return sections
