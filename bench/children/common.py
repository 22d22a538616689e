# mypy: disallow-untyped-calls=False
"""Helpers shared by children: quiet Luigi builds, peak RSS, test arrays."""

from __future__ import annotations

import logging
import os
import resource
import time
from typing import Any

import luigi
import numpy as np

CHUNK = 16 << 20


def quiet() -> None:
    """Silence every logger (Luigi's included) the same way for all peers."""
    logging.disable(logging.CRITICAL)


def timed_build(tasks: list[Any]) -> float:
    """Seconds spent in ``luigi.build`` (1 worker, local scheduler); raises if it failed."""
    quiet()
    start = time.perf_counter()
    ok = luigi.build(tasks, local_scheduler=True, workers=1, log_level="CRITICAL")
    elapsed = time.perf_counter() - start
    if not ok:
        raise RuntimeError(f"luigi.build failed for {tasks[:3]}")
    return elapsed


def peak_rss_kb() -> int:
    """This process's own peak resident set size in KiB.

    ``VmHWM`` of this process's memory, not ``ru_maxrss``: the latter carries
    the parent's peak over ``fork`` + ``exec``, so every child of a harness
    holding moto's buffers reported the harness's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def make_array(mib: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A writable, non-constant ``uint8`` array, built in chunks so peak RSS stays ~1x."""
    n = mib << 20
    rng = np.random.default_rng(0)
    out = np.empty(n, dtype=np.uint8)
    for i in range(0, n, CHUNK):
        j = min(n, i + CHUNK)
        out[i:j] = np.frombuffer(rng.bytes(j - i), dtype=np.uint8)
    return out


def fingerprint(arr: Any) -> list[int]:
    """Cheap content check: length and a few bytes from the start, middle and end."""
    a = np.asarray(arr).reshape(-1)
    n = a.shape[0]
    return [int(n), *(int(a[i]) for i in (0, n // 2, n - 1))]


def sync() -> None:
    os.sync()
