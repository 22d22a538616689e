"""Small save latency: ``store.save`` vs ``pickle.dump`` through a ``LocalTarget``."""

from __future__ import annotations

from ..harness import LINEA, PLAIN, Cell, Check, Context, Section, new_cells, progress, verdict
from ..pg import pg_database

BUDGET_MS = {"SQLite": 0.5, "PostgreSQL": 1.5}


def _within(budget: float) -> Check:
    def check(cells: dict[str, Cell]) -> str:
        a, b = cells[LINEA].median, cells[PLAIN].median
        return verdict(None if a is None or b is None else a - b <= budget)

    return check


def run(ctx: Context) -> list[Section]:
    n = ctx.sizes.small_saves
    plain = new_cells("ms", [PLAIN], ctx)[PLAIN]
    linea = {b: new_cells("ms", [LINEA], ctx)[LINEA] for b in BUDGET_MS}
    for rep in range(ctx.reps):
        progress(f"[small] rep {rep + 1}/{ctx.reps}")
        with ctx.scratch("small") as root:
            ctx.record(plain, "small:plain", {"root": str(root), "iterations": n})
            sqlite = f"sqlite:///{root}/meta.sqlite"
            args = {"db_url": sqlite, "storage_dir": f"{root}/artifacts", "iterations": n}
            ctx.record(linea["SQLite"], "small:linea", args)
            try:
                with pg_database() as url:
                    args = {"db_url": url, "storage_dir": f"{root}/pg", "iterations": n}
                    ctx.record(linea["PostgreSQL"], "small:linea", args)
            except Exception as exc:  # PostgreSQL unreachable
                ctx.fail(linea["PostgreSQL"], f"{type(exc).__name__}: {exc}")
    sections = []
    for backend, budget in BUDGET_MS.items():
        cells = {PLAIN: plain, LINEA: linea[backend]}
        a, b = cells[LINEA].median, plain.median
        diff = "" if a is None or b is None else f"linea - plain = {a - b:+.3f} ms; "
        sections.append(
            Section(
                "small",
                f"small save, one value, {backend}",
                cells,
                target=f"≤ plain + {budget} ms",
                check=_within(budget),
                notes=f"{diff}median of {n} saves to one name, fresh process",
            )
        )
    return sections
