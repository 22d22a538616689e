"""The task lock: its cost per task, and four builds of one DAG at once (SQLite, PostgreSQL)."""

from __future__ import annotations

from typing import Any

from ..harness import LINEA, Cell, Check, Context, Section, new_cells, progress, verdict
from .lookup import database

#: the lock's budget per task (acquire, complete() asked again, release), µs
BUDGET_US = {"SQLite": 300.0, "PostgreSQL": 1000.0}
ALONE, FOUR = "alone (1 build)", "4 builds at once"
PROCS, DAG_TASKS, WORK_S = 4, 20, 0.05
#: "close to one build's": the four builds together may take this much longer than one
CLOSE = 1.5


def _at_most(limit: float) -> Check:
    def check(cells: dict[str, Cell]) -> str:
        m = cells[LINEA].median
        return verdict(None if m is None else m <= limit)

    return check


def _exact_and_close(cells: dict[str, Cell]) -> str:
    a, b = cells[FOUR].median, cells[ALONE].median
    if a is None or b is None:
        return "-"
    exact = all(e["exact"] for c in cells.values() for e in c.extras)
    return verdict(exact and a <= CLOSE * b)


def _per_task(ctx: Context, backend: str, cell: Cell, tasks: int) -> None:
    try:
        with database(ctx, backend) as (url, storage):
            args = {"db_url": url, "storage_dir": storage, "tasks": tasks}
            ctx.record(cell, "tasklock:per_task", args, key="overhead_us")
    except Exception as exc:  # PostgreSQL unreachable
        ctx.fail(cell, f"{type(exc).__name__}: {exc}")


def _dag(ctx: Context, backend: str, cell: Cell, procs: int) -> None:
    try:
        with database(ctx, backend) as (url, storage):
            args: dict[str, Any] = {
                "db_url": url,
                "storage_dir": storage,
                "procs": procs,
                "n": DAG_TASKS,
                "sleep": WORK_S,
            }
            result = ctx.record(cell, "tasklock:together", args)
    except Exception as exc:  # PostgreSQL unreachable
        ctx.fail(cell, f"{type(exc).__name__}: {exc}")
        return
    if result is not None and not result["exact"]:
        ctx.failures.append(f"tasklock {backend}, {procs} builds: runs not exact: {result}")


def run(ctx: Context) -> list[Section]:
    tasks = ctx.sizes.lookup_calls
    cost = {b: new_cells("µs", [LINEA], ctx)[LINEA] for b in BUDGET_US}
    dags = {b: new_cells("s", [ALONE, FOUR], ctx) for b in BUDGET_US}
    for rep in range(ctx.reps):
        for backend in BUDGET_US:
            progress(f"[tasklock {backend}] rep {rep + 1}/{ctx.reps}")
            _per_task(ctx, backend, cost[backend], tasks)
            _dag(ctx, backend, dags[backend][ALONE], 1)
            _dag(ctx, backend, dags[backend][FOUR], PROCS)
    sections = []
    for backend, budget in BUDGET_US.items():
        sections.append(
            Section(
                "tasklock",
                f"task lock per task: acquire, complete() again, release; {backend}",
                {LINEA: cost[backend]},
                base=None,
                target=f"≤ {budget:.0f} µs",
                check=_at_most(budget),
                notes=f"run() of {tasks} tasks with an empty run(), with the lock minus "
                "without it (task_lock = false), medians of 5 alternating rounds",
            )
        )
    for backend in BUDGET_US:
        sections.append(
            Section(
                "tasklock",
                f"{PROCS} processes build the same {DAG_TASKS}-task DAG at once, {backend}",
                dags[backend],
                base=ALONE,
                target=f"each run() once; ≤ {CLOSE}x one build",
                check=_exact_and_close,
                notes=f"luigi.build(local_scheduler=True) per process, each run() works "
                f"{WORK_S * 1000:.0f} ms; time from a common start to the last build's end",
            )
        )
    return sections
