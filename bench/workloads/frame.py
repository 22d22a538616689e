"""A pandas frame as Parquet: save, load and a one-column load, each in a fresh process."""

from __future__ import annotations

from typing import Any

from ..harness import (
    GOKART,
    LINEA,
    RAW,
    Cell,
    Check,
    Context,
    Section,
    at_most,
    new_cells,
    progress,
)
from .common import linea_env

#: gokart's ``.parquet`` target with the processor's compression set to snappy (as the others)
GOKART_SNAPPY = "gokart, snappy"
PEERS = [RAW, LINEA, GOKART, GOKART_SNAPPY]
#: peers of the one-column row; its ratio is to linea's whole load of the same rep
WHOLE = "whole load (linea)"
COLUMN_PEERS = [LINEA, RAW]
#: the child's arguments that make a peer (gokart's default processor compresses with gzip)
CHILD = {
    RAW: {"peer": RAW},
    LINEA: {"peer": LINEA},
    GOKART: {"peer": GOKART, "compression": ""},
    GOKART_SNAPPY: {"peer": GOKART, "compression": "snappy"},
}


def both(*checks: Check) -> Check:
    """Several checks in one "met?" cell."""

    def check(cells: dict[str, Cell]) -> str:
        return "; ".join(c(cells) for c in checks)

    return check


def named(name: str, inner: Check) -> Check:
    """``inner``'s verdict prefixed with ``name`` (for a second target in one cell)."""
    return lambda cells: f"{name} {inner(cells)}"


def _rep(
    ctx: Context,
    peer: str,
    rows: int,
    cells: tuple[dict[str, Cell], dict[str, Cell], dict[str, Cell]],
) -> None:
    saves, loads, columns = cells
    with ctx.scratch("frame") as root:
        args: dict[str, Any] = {
            **CHILD[peer],
            "rows": rows,
            "root": str(root),
            "prefault_mib": ctx.sizes.prefault_mib,
        }
        env = linea_env(root)
        saved = ctx.record(saves[peer], "frame:save", args, env)
        if saved is None:
            return
        for _ in range(ctx.sizes.loads_per_save):
            ctx.maybe_drop_caches()
            loaded = ctx.record(loads[peer], "frame:load", args, env)
            if loaded is not None and loaded["check"] != saved["check"]:
                ctx.fail(loads[peer], f"loaded {loaded['check']}, saved {saved['check']}")
            if peer not in COLUMN_PEERS:
                continue
            ctx.maybe_drop_caches()
            one = ctx.record(columns[peer], "frame:load", {**args, "columns": ["x"]}, env)
            if one is not None and one["check"] != saved["check_column"]:
                ctx.fail(columns[peer], f"loaded {one['check']}, saved {saved['check_column']}")


def run(ctx: Context) -> list[Section]:
    rows = ctx.sizes.frame_rows
    saves, loads = new_cells("s", PEERS, ctx), new_cells("s", PEERS, ctx)
    columns = new_cells("s", COLUMN_PEERS, ctx)
    for rep in range(ctx.reps):
        for peer in PEERS:
            progress(f"[frame {rows:,} rows] rep {rep + 1}/{ctx.reps} {peer}")
            _rep(ctx, peer, rows, (saves, loads, columns))
    cache = "page cache dropped before each load" if ctx.drop_caches else "page cache warm"
    cache += f", {ctx.sizes.loads_per_save} loads per save"
    size = f"{rows:,} x 10 frame"
    gokart = "gokart: its .parquet target (gzip, its default) and the same with snappy"
    return [
        Section(
            "frame",
            f"save {size}, Parquet",
            saves,
            base=RAW,
            target="≤ 1.1x raw, RSS ≤ 1.1x raw; ≤ gokart",
            check=both(
                at_most(LINEA, RAW, 1.1, rss=True), named("≤ gokart:", at_most(LINEA, GOKART, 1.0))
            ),
            notes="raw = df.to_parquet(path, compression='snappy'); linea = store.save (auto: "
            f"Parquet, snappy, page checksums, BLAKE3); {gokart}, time of its dump() alone; "
            "peak RSS of the save with the frame resident, one save per process",
        ),
        Section(
            "frame",
            f"load {size}, new process",
            loads,
            base=RAW,
            target="≤ 1.15x raw, RSS ≤ 1.1x raw; ≤ gokart",
            check=both(
                at_most(LINEA, RAW, 1.15, rss=True), named("≤ gokart:", at_most(LINEA, GOKART, 1.0))
            ),
            notes=f"{cache}; raw = pd.read_parquet(path); linea = store.load, digest verified "
            "before parsing; gokart = task.output().load()",
        ),
        Section(
            "frame",
            f"load 1 of 10 columns of the {size}, new process",
            {WHOLE: loads[LINEA], **columns},
            base=WHOLE,
            target="≤ 0.25x whole load",
            check=at_most(LINEA, WHOLE, 0.25),
            notes=f"{cache}; linea = store.load(name, columns=['x']) (page checksums, no "
            "whole-file digest); raw = pd.read_parquet(path, columns=['x'])",
        ),
    ]
