"""Workload sizes: ``full`` is what RESULTS.md records, ``tiny`` keeps the smoke test fast."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    """How big each workload is."""

    dag_tasks: tuple[int, ...]
    array_mib: tuple[int, ...]
    lookup_rows: int
    lookup_calls: int
    procs: int
    saves_per_proc: int
    small_saves: int
    s3_mib: int
    frame_rows: int
    npy_mib: int
    #: memory touched and freed before each frame/npy measurement (children/array.py)
    prefault_mib: int
    #: fresh-process loads after each frame/npy save (loads are cheap and noisier than saves)
    loads_per_save: int


FULL = Sizes(
    dag_tasks=(300, 2000),
    array_mib=(512, 1024),
    lookup_rows=100_000,
    lookup_calls=2000,
    procs=8,
    saves_per_proc=250,
    small_saves=500,
    s3_mib=256,
    frame_rows=5_000_000,
    npy_mib=512,
    prefault_mib=1536,
    loads_per_save=3,
)

TINY = Sizes(
    dag_tasks=(10,),
    array_mib=(1,),
    lookup_rows=1000,
    lookup_calls=50,
    procs=8,
    saves_per_proc=5,
    small_saves=20,
    s3_mib=1,
    frame_rows=2000,
    npy_mib=1,
    prefault_mib=0,
    loads_per_save=1,
)

SIZES = {"full": FULL, "tiny": TINY}


def mib_label(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"
