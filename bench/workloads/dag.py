"""Fan-in DAG: cold, again in the same process, and in a new process with all complete."""

from __future__ import annotations

from typing import Any

from ..harness import GOKART, LINEA, PLAIN, Context, Section, at_most, new_cells, progress
from .common import linea_env

PEERS = [PLAIN, LINEA, GOKART]
NOTE = "time of luigi.build only; 1 worker, local scheduler, logging disabled"


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
