"""S3 through moto on loopback: linea save/load vs raw s3fs pipe_file/cat_file."""

from __future__ import annotations

from typing import Any

from ..harness import LINEA, RAW, Context, Section, at_most, new_cells, progress
from ..moto_server import AWS_ENV, empty_prefix, s3_client, s3_server
from ..sizes import mib_label

PEERS = [LINEA, RAW]
BUCKET = "ll-bench"


def run(ctx: Context) -> list[Section]:
    mib = ctx.sizes.s3_mib
    saves, loads = new_cells("s", PEERS, ctx), new_cells("s", PEERS, ctx)
    try:
        with s3_server() as endpoint:
            client = s3_client(endpoint)
            client.create_bucket(Bucket=BUCKET)
            for rep in range(ctx.reps):
                for peer in PEERS:
                    progress(f"[s3 {mib_label(mib)}] rep {rep + 1}/{ctx.reps} {peer}")
                    prefix = f"r{rep}-{peer}"
                    with ctx.scratch("s3") as root:
                        args: dict[str, Any] = {
                            "peer": peer,
                            "mib": mib,
                            "endpoint": endpoint,
                            "db_url": f"sqlite:///{root}/meta.sqlite",
                            "prefix": f"{BUCKET}/{prefix}",
                        }
                        saved = ctx.record(saves[peer], "s3:save", args, AWS_ENV)
                        if saved is not None:
                            loaded = ctx.record(loads[peer], "s3:load", args, AWS_ENV)
                            if loaded is not None and loaded["check"] != saved["check"]:
                                ctx.fail(loads[peer], f"loaded {loaded['check']} != saved")
                    empty_prefix(client, BUCKET, prefix)
    except Exception as exc:  # moto failed to start, ...
        for cells in (saves, loads):
            for cell in cells.values():
                if not cell.problem:
                    ctx.fail(cell, f"{type(exc).__name__}: {exc}")
    size = mib_label(mib)
    notes = "moto ThreadedMotoServer on 127.0.0.1 (in the harness process); warm-up op untimed"
    return [
        Section(
            "s3",
            f"S3 save {size} uint8 array",
            saves,
            base=RAW,
            target="≤ 1.2x raw",
            check=at_most(LINEA, RAW, 1.2),
            notes=notes + "; raw = s3fs pipe_file(bytes)",
        ),
        Section(
            "s3",
            f"S3 load {size} uint8 array, new process",
            loads,
            base=RAW,
            target="≤ 1.2x raw",
            check=at_most(LINEA, RAW, 1.2),
            notes="raw = s3fs cat_file; linea verifies the digest",
        ),
    ]
