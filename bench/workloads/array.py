"""Large uint8 array: save through a Luigi task (+ os.sync), then load in a fresh process."""

from __future__ import annotations

from typing import Any

from ..harness import GOKART, LINEA, PLAIN, RAW, Context, Section, at_most, new_cells, progress
from ..sizes import mib_label
from .common import linea_env

PEERS = [PLAIN, LINEA, GOKART, RAW]


def run(ctx: Context) -> list[Section]:
    sections: list[Section] = []
    cache = "page cache dropped before each load" if ctx.drop_caches else "page cache warm"
    for mib in ctx.sizes.array_mib:
        saves, loads = new_cells("s", PEERS, ctx), new_cells("s", PEERS, ctx)
        for rep in range(ctx.reps):
            for peer in PEERS:
                progress(f"[array {mib_label(mib)}] rep {rep + 1}/{ctx.reps} {peer}")
                with ctx.scratch(f"array{mib}") as root:
                    args: dict[str, Any] = {"peer": peer, "mib": mib, "root": str(root)}
                    env = linea_env(root)
                    saved = ctx.record(saves[peer], "array:save", args, env)
                    if saved is None:
                        continue
                    ctx.maybe_drop_caches()
                    loaded = ctx.record(loads[peer], "array:load", args, env)
                    if loaded is not None and loaded["check"] != saved["check"]:
                        ctx.fail(loads[peer], f"loaded {loaded['check']}, saved {saved['check']}")
        size = mib_label(mib)
        sections += [
            Section(
                "array",
                f"save {size} uint8 array, + os.sync()",
                saves,
                target="≤ 1.1x plain, RSS ≤ 1.1x plain",
                check=at_most(LINEA, PLAIN, 1.1, rss=True),
                notes="peak RSS includes the array itself; raw = np.save",
            ),
            Section(
                "array",
                f"load {size} uint8 array, new process",
                loads,
                target="≤ 1.2x plain",
                check=at_most(LINEA, PLAIN, 1.2),
                notes=f"{cache}; linea verifies the digest; raw = np.load",
            ),
        ]
    return sections
