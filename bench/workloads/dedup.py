"""Identical values stored once: saving a value already stored (another name, a new process)
against its first save, and how much storage each grew (nothing, for the identical value)."""

from __future__ import annotations

from typing import Any

from ..harness import Cell, Check, Context, Section, new_cells, progress
from ..moto_server import AWS_ENV, empty_prefix, s3_client, s3_server
from ..sizes import mib_label
from .common import linea_env

#: the two modes (the same strings as ``children.dedup``; the harness never imports children)
FIRST, AGAIN = "first save", "identical value stored"
PEERS = [FIRST, AGAIN]
#: MiB touched and freed before a timed save, per MiB of the value (``children.dedup.prefault``)
PREFAULT = 6


def run(ctx: Context) -> list[Section]:
    mib, count = ctx.sizes.s3_mib, ctx.sizes.small_saves
    arrays, dicts = new_cells("s", PEERS, ctx), new_cells("ms", PEERS, ctx)
    for rep in range(ctx.reps):
        with ctx.scratch("dedup") as root:
            env = linea_env(root)
            for mode in PEERS:  # FIRST, then AGAIN into the same store
                progress(f"[dedup {mib_label(mib)}] rep {rep + 1}/{ctx.reps} {mode}")
                args: dict[str, Any] = {"mode": mode, "mib": mib, "prefault_mib": PREFAULT * mib}
                ctx.record(arrays[mode], "dedup:save_array", args, env)
            for mode in PEERS:
                progress(f"[dedup {count} dicts] rep {rep + 1}/{ctx.reps} {mode}")
                ctx.record(
                    dicts[mode], "dedup:save_small", {"mode": mode, "count": count}, env, "ms"
                )
    notes = "SQLite + local folder; new process per mode, untimed warm-up save"
    return [
        Section(
            "dedup",
            f"save {mib_label(mib)} uint8 array (.npy), identical value already stored",
            arrays,
            base=FIRST,
            target="storage grows 0 B",
            check=grew_nothing(),
            notes=f"{notes}; {_growth(arrays)}; dirty pages flushed and {PREFAULT}x the "
            "value's size touched and freed before the timer",
        ),
        Section(
            "dedup",
            f"save a small dict ({count} saves), identical values already stored",
            dicts,
            base=FIRST,
            target="storage grows 0 B",
            check=grew_nothing(),
            notes=f"{notes}; per save; {_growth(dicts)}",
        ),
        _on_s3(ctx, mib),
    ]


BUCKET = "ll-bench-dedup"


def _on_s3(ctx: Context, mib: int) -> Section:
    """The array row again with the values on moto's S3 server (loopback, harness process)."""
    cells = new_cells("s", PEERS, ctx)
    try:
        with s3_server() as endpoint:
            client = s3_client(endpoint)
            client.create_bucket(Bucket=BUCKET)
            for rep in range(ctx.reps):
                prefix = f"r{rep}"
                with ctx.scratch("dedup-s3") as root:
                    env = {**linea_env(root), **AWS_ENV}
                    env["LINEA_LUIGI_ARTIFACT_STORAGE_DIR"] = f"s3://{BUCKET}/{prefix}"
                    for mode in PEERS:
                        progress(f"[dedup S3 {mib_label(mib)}] rep {rep + 1}/{ctx.reps} {mode}")
                        args: dict[str, Any] = {"mode": mode, "mib": mib, "endpoint": endpoint}
                        args["prefault_mib"] = PREFAULT * mib
                        ctx.record(cells[mode], "dedup:save_array", args, env)
                empty_prefix(client, BUCKET, prefix)
    except Exception as exc:  # moto failed to start, ...
        for cell in cells.values():
            if not cell.problem:
                ctx.fail(cell, f"{type(exc).__name__}: {exc}")
    return Section(
        "dedup",
        f"S3 save {mib_label(mib)} uint8 array (.npy), identical value already stored",
        cells,
        base=FIRST,
        target="storage grows 0 B",
        check=grew_nothing(),
        notes="SQLite + moto S3 on 127.0.0.1, default settings; new process per mode, "
        f"untimed warm-up save; {_growth(cells)}",
    )


def grew_nothing() -> Check:
    """``yes`` when every identical save grew storage by 0 bytes (and the first saves did grow)."""

    def check(cells: dict[str, Cell]) -> str:
        again, first = cells[AGAIN], cells[FIRST]
        if again.problem or first.problem or not again.extras:
            return "-"
        ok = all(e["growth_bytes"] == 0 for e in again.extras)
        ok = ok and all(e["growth_bytes"] > 0 for e in first.extras)
        return "yes" if ok else "NO"

    return check


def _growth(cells: dict[str, Cell]) -> str:
    """The storage growth of each mode, as the notes column shows it."""
    parts = []
    for mode in PEERS:
        grown = [e["growth_bytes"] for e in cells[mode].extras]
        shown = "-" if not grown else f"{max(grown):,} B"
        parts.append(f"storage growth {mode}: {shown}")
    return ", ".join(parts)
