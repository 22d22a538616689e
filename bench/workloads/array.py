"""Large arrays: a uint8 array saved by a Luigi task (+ os.sync) and loaded in a fresh
process; and (``npy``) a float64 array saved and loaded directly, against np.save / np.load."""

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


NPY_PEERS = [RAW, LINEA]


def run_npy(ctx: Context) -> list[Section]:
    """A float64 array through linea's ``.npy`` serializer against ``np.save`` / ``np.load``."""
    mib = ctx.sizes.npy_mib
    saves, loads = new_cells("s", NPY_PEERS, ctx), new_cells("s", NPY_PEERS, ctx)
    for rep in range(ctx.reps):
        for peer in NPY_PEERS:
            progress(f"[npy {mib_label(mib)}] rep {rep + 1}/{ctx.reps} {peer}")
            with ctx.scratch(f"npy{mib}") as root:
                args: dict[str, Any] = {"peer": peer, "mib": mib, "root": str(root)}
                args["prefault_mib"] = ctx.sizes.prefault_mib
                env = linea_env(root)
                saved = ctx.record(saves[peer], "array:npy_save", args, env)
                if saved is None:
                    continue
                for _ in range(ctx.sizes.loads_per_save):
                    ctx.maybe_drop_caches()
                    loaded = ctx.record(loads[peer], "array:npy_load", args, env)
                    if loaded is not None and loaded["check"] != saved["check"]:
                        ctx.fail(loads[peer], f"loaded {loaded['check']}, saved {saved['check']}")
    size = mib_label(mib)
    cache = "page cache dropped before each load" if ctx.drop_caches else "page cache warm"
    cache += f", {ctx.sizes.loads_per_save} loads per save"
    return [
        Section(
            "npy",
            f"save {size} float64 array, .npy",
            saves,
            base=RAW,
            target="≤ 1.1x raw",
            check=at_most(LINEA, RAW, 1.1),
            notes="raw = np.save(path); linea = store.save (auto: npy, BLAKE3); no sync in "
            "the timing (dirty pages flushed before it); peak RSS with the array resident",
        ),
        Section(
            "npy",
            f"load {size} float64 array, new process",
            loads,
            base=RAW,
            target="≤ 1.2x raw",
            check=at_most(LINEA, RAW, 1.2),
            notes=f"{cache}; raw = np.load(path); linea = store.load, digest verified",
        ),
    ]
