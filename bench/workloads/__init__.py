"""The workloads, by the name ``--only`` takes; each returns its table sections."""

from __future__ import annotations

from collections.abc import Callable

from ..harness import Context, Section
from . import array, browse, cache, concurrent, dag, dedup, frame, lookup, s3, small, tasklock

Workload = Callable[[Context], list[Section]]

WORKLOADS: dict[str, Workload] = {
    "dag": dag.run,
    "array": array.run,
    "lookup": lookup.run,
    "concurrent": concurrent.run,
    "small": small.run,
    "s3": s3.run,
    "browse": browse.run,
    "frame": frame.run,
    "npy": array.run_npy,
    "cache": cache.run,
    "dedup": dedup.run,
    "tasklock": tasklock.run,
}
