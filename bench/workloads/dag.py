"""Fan-in DAG: cold, again in the same process, and in a new process with all complete."""

from __future__ import annotations

from typing import Any

from ..harness import (
    GOKART,
    LINEA,
    PLAIN,
    ChildError,
    Context,
    Section,
    at_most,
    new_cells,
    progress,
)
from .common import linea_env

PEERS = [PLAIN, LINEA, GOKART]
NOTE = "time of luigi.build only; 1 worker, local scheduler, logging disabled"


def _first_use(ctx: Context, cell: Any, root: Any, env: dict[str, str]) -> bool:
    """Create linea's (empty) store in a process of its own, before the measured one.

    The cold build measures a pipeline after its store's first use, as plain
    Luigi's output folder already exists. Creating the database migrates it,
    which imports Alembic (about 21,000 objects and 145 modules); done inside
    the measured process, they stayed in its heap, and every full garbage
    collection during the build scanned them, which no pipeline after the
    store's first use pays.
    """
    try:
        ctx.child("tasks_linea:configure", {"root": str(root)}, env)
    except ChildError as exc:
        ctx.fail(cell, str(exc))
        return False
    return True


def run(ctx: Context) -> list[Section]:
    sections: list[Section] = []
    for n in ctx.sizes.dag_tasks:
        cold, warm, fresh = (new_cells("s", PEERS, ctx) for _ in range(3))
        for rep in range(ctx.reps):
            for peer in PEERS:
                progress(f"[dag {n}] rep {rep + 1}/{ctx.reps} {peer}")
                with ctx.scratch(f"dag{n}") as root:
                    args: dict[str, Any] = {"peer": peer, "n": n, "root": str(root)}
                    env = linea_env(root)
                    if peer == LINEA and not _first_use(ctx, cold[peer], root, env):
                        continue
                    result = ctx.record(cold[peer], "dag:cold_then_warm", args, env)
                    if result is None:
                        continue
                    warm[peer].add(result, "warm")
                    ctx.record(fresh[peer], "dag:complete", args, env)
        label = f"fan-in DAG, {n} tasks"
        sections += [
            Section(
                "dag",
                f"{label}: cold (empty store)",
                cold,
                target="≤ 1.25x plain",
                check=at_most(LINEA, PLAIN, 1.25),
                notes=NOTE,
            ),
            Section(
                "dag",
                f"{label}: again, same process",
                warm,
                target="≤ 2x plain",
                check=at_most(LINEA, PLAIN, 2.0),
                notes="new task instances, all complete; Luigi asks only the final task, and a "
                "peer keyed by its requirements hashes all of them",
            ),
            Section(
                "dag",
                f"{label}: new process, all complete",
                fresh,
                target="≤ gokart",
                check=at_most(LINEA, GOKART, 1.0),
            ),
        ]
    return sections
