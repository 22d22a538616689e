"""The local value cache (issue 16): a large value on S3 (moto on loopback), cache off/cold/warm.

Per repetition and value kind (a float64 array as ``.npy``; a dict of float64
arrays, pickled), each step a fresh process:

1. save to S3 with the cache off (today), then to another prefix with it on
   (the save copies the bytes into the cache while it uploads);
2. load from S3 with the cache off (today), then with an empty cache (a miss
   that fills it), then again (a hit, verified);
3. save the same value to local storage and load it (the bar for the hit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..harness import Cell, Context, Section, at_most, new_cells, progress
from ..moto_server import AWS_ENV, empty_prefix, s3_client, s3_server
from ..sizes import mib_label

BUCKET = "ll-bench-cache"
KINDS = {"npy": "float64 array, .npy", "pickle": "dict of 8 float64 arrays, pickled"}
#: peers (the ratio column names a base by its first word)
OFF, ON, COLD, WARM, LOCAL = "off (today)", "on", "cold cache", "warm cache", "local storage"


def run(ctx: Context) -> list[Section]:
    mib = ctx.sizes.s3_mib
    cells = {
        kind: {
            "save": new_cells("s", [OFF, ON], ctx),
            "first": new_cells("s", [OFF, COLD], ctx),
            "second": new_cells("s", [LOCAL, WARM], ctx),
        }
        for kind in KINDS
    }
    try:
        with s3_server() as endpoint:
            client = s3_client(endpoint)
            client.create_bucket(Bucket=BUCKET)
            for rep in range(ctx.reps):
                for kind in KINDS:
                    progress(f"[cache {mib_label(mib)} {kind}] rep {rep + 1}/{ctx.reps}")
                    with ctx.scratch("cache") as root:
                        _one_rep(ctx, cells[kind], kind, mib, endpoint, root, f"r{rep}-{kind}")
                    for prefix in (f"r{rep}-{kind}", f"r{rep}-{kind}-on"):
                        empty_prefix(client, BUCKET, prefix)
    except Exception as exc:  # moto failed to start, ...
        for by_row in cells.values():
            for row in by_row.values():
                for cell in row.values():
                    if not cell.problem:
                        ctx.fail(cell, f"{type(exc).__name__}: {exc}")
    return [s for kind in KINDS for s in _sections(kind, mib, cells[kind])]


def _one_rep(
    ctx: Context,
    cells: dict[str, dict[str, Cell]],
    kind: str,
    mib: int,
    endpoint: str,
    root: Path,
    prefix: str,
) -> None:
    def args(storage: str, cache_dir: str, db: str = "meta") -> dict[str, Any]:
        return {
            "kind": kind,
            "mib": mib,
            "db_url": f"sqlite:///{root}/{db}.sqlite",
            "storage": storage,
            "endpoint": endpoint,
            "cache_dir": cache_dir,
            "prefault_mib": ctx.sizes.prefault_mib,
        }

    s3 = f"s3://{BUCKET}/{prefix}"
    saved = ctx.record(cells["save"][OFF], "cache:save", args(s3, "none"), AWS_ENV)
    ctx.record(
        cells["save"][ON], "cache:save", args(f"{s3}-on", str(root / "c-save"), "on"), AWS_ENV
    )
    if saved is None:
        return
    steps = [
        ("first", OFF, args(s3, "none")),
        ("first", COLD, args(s3, str(root / "c"))),
        ("second", WARM, args(s3, str(root / "c"))),
    ]
    local = args(str(root / "local"), "none", "local")
    if ctx.record(Cell("s"), "cache:save", local, AWS_ENV) is not None:  # untimed
        steps.append(("second", LOCAL, local))
    for row, peer, kwargs in steps:
        ctx.maybe_drop_caches()
        loaded = ctx.record(cells[row][peer], "cache:load", kwargs, AWS_ENV)
        if loaded is None:
            continue
        if loaded["check"] != saved["check"]:
            ctx.fail(cells[row][peer], f"loaded {loaded['check']}, saved {saved['check']}")
        elif loaded["cached"] != (peer == WARM):
            ctx.fail(cells[row][peer], f"{peer}: the value was cached={loaded['cached']}")


def _sections(kind: str, mib: int, cells: dict[str, dict[str, Cell]]) -> list[Section]:
    what = f"{mib_label(mib)} {KINDS[kind]}"
    moto = "moto ThreadedMotoServer on 127.0.0.1; new process per op, warm-up op untimed"
    return [
        Section(
            "cache",
            f"S3 save {what}: cache off vs on",
            cells["save"],
            base=OFF,
            target="≤ 1.1x off",
            check=at_most(ON, OFF, 1.1),
            notes=f"{moto}; on = the bytes also copied into the cache while they upload",
        ),
        Section(
            "cache",
            f"S3 first load {what}: cache off vs cold",
            cells["first"],
            base=OFF,
            target="≤ 1.05x off",
            check=at_most(COLD, OFF, 1.05),
            notes="cold = a miss: read from S3, copied into the cache as it is read, "
            "published after the digest matched",
        ),
        Section(
            "cache",
            f"second load {what}: cache warm vs local storage",
            cells["second"],
            base=LOCAL,
            target="≤ 1.2x local",
            check=at_most(WARM, LOCAL, 1.2),
            notes="warm = a hit: the entry read and its digest verified, no S3 request; "
            "local = the value saved to a local folder; page cache warm for both",
        ),
    ]
