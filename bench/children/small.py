# mypy: disallow-untyped-calls=False
"""Small save latency: ``store.save`` in a loop vs ``pickle.dump`` through a ``LocalTarget``."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

WARMUP = 10
VALUE = {"a": 1, "b": [1.5, 2.5, 3.5], "c": "x" * 100}


def _median_ms(op: Callable[[int], Any], iterations: int) -> float:
    for k in range(WARMUP):
        op(-1 - k)
    times = []
    for k in range(iterations):
        t0 = time.perf_counter_ns()
        op(k)
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e6


def plain(root: str, iterations: int) -> dict[str, Any]:
    import luigi
    import luigi.format

    from .tasks_plain import dump

    def op(k: int) -> None:
        dump(VALUE, luigi.LocalTarget(os.path.join(root, f"{k}.pkl"), format=luigi.format.Nop))

    return {"seconds": _median_ms(op, iterations)}


def linea(db_url: str, storage_dir: str, iterations: int) -> dict[str, Any]:
    import linea_luigi as ll

    store = ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir)
    return {"seconds": _median_ms(lambda k: store.save(VALUE, "bench.small"), iterations)}
