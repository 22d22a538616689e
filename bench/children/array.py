"""Large arrays: a task saving a ``uint8`` array (then ``os.sync``), a fresh process loading
it; and ``npy_save`` / ``npy_load``: a ``float64`` array through ``.npy``, or np.save / np.load."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
import time
from typing import Any

import numpy as np

from ..harness import GOKART, LINEA, PLAIN, RAW
from .common import fingerprint, make_array, peak_rss_kb, sync, timed_build
from .peers import read_output, task, tasks_for


def save(peer: str, mib: int, root: str) -> dict[str, Any]:
    """Seconds for the save (through ``luigi.build`` except raw) plus ``os.sync()``."""
    arr = make_array(mib)
    if peer == RAW:
        start = time.perf_counter()
        np.save(os.path.join(root, "raw.npy"), arr)
        sync()
        seconds = time.perf_counter() - start
    else:
        module = tasks_for(peer, root, arr)
        if peer == LINEA:  # an existing store: schema made before timing
            import linea_luigi as ll

            ll.artifact_store().latest_version("bench.warmup")
        start = time.perf_counter()
        timed_build([task(module, peer, "Array", mib=mib)])
        sync()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_kb": peak_rss_kb(), "check": fingerprint(arr)}


def load(peer: str, mib: int, root: str) -> dict[str, Any]:
    """Seconds to load the saved array in a process that does nothing else."""
    value: Any
    if peer == RAW:
        start = time.perf_counter()
        value = np.load(os.path.join(root, "raw.npy"))
    elif peer == LINEA:
        import linea_luigi as ll

        start = time.perf_counter()
        value = ll.ArtifactStore(
            db_url=os.environ["LINEA_LUIGI_DATABASE_URL"],
            storage_dir=os.environ["LINEA_LUIGI_ARTIFACT_STORAGE_DIR"],
        ).load("bench.array")
    elif peer in (PLAIN, GOKART):
        module = tasks_for(peer, root)
        instance = task(module, peer, "Array", mib=mib)
        start = time.perf_counter()
        value = read_output(module, peer, instance)
    else:
        raise ValueError(peer)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_kb": peak_rss_kb(), "check": fingerprint(value)}


# --- npy: a float64 array, linea's .npy serializer against np.save / np.load ---------------

NPY_NAME = "bench.npy"


def start_measuring(prefault_mib: int) -> int:
    """Prepare the timed operation; return this process's RSS in KiB at its start.

    1. Touch and free ``prefault_mib`` MiB. This machine is a VM that hands
       freed memory back to its host (``page_reporting``): the first touch of
       such a page costs a fault on the host, several times the cost of the
       guest's own page fault, and whichever peer happens to get those pages
       measured 2-4x slower. Pages freed a moment ago are still backed, so the
       operation that follows pays what it would on a plain machine.
    2. Give memory freed while building the value back to the system (glibc's
       heap, pyarrow's pool), so that the starting RSS is the live data.
    3. Reset ``VmHWM`` to the current RSS: the peak read afterwards is the
       operation's own (with the value it works on still resident).
    """
    if prefault_mib:
        scratch = np.empty(prefault_mib << 20, dtype=np.uint8)
        scratch.fill(1)
        del scratch
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux: the peak then covers the whole process
        pass
    return peak_rss_kb()


def make_floats(mib: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A seeded ``float64`` array of ``mib`` MiB, filled in chunks (peak RSS ~1x)."""
    n = (mib << 20) // 8
    rng = np.random.default_rng(15)
    out = np.empty(n, dtype=np.float64)
    step = (16 << 20) // 8
    for i in range(0, n, step):
        rng.standard_normal(out=out[i : i + step])
    return out


def float_check(value: Any) -> list[Any]:
    """Shape, dtype and a strided sample's sum: enough to tell a wrong or shifted load."""
    a = np.asarray(value)
    flat = a.reshape(-1)
    return [list(a.shape), str(a.dtype), float(flat[0]), float(flat[-1]), float(flat[::997].sum())]


def _store() -> Any:
    import linea_luigi as ll

    return ll.ArtifactStore(
        db_url=os.environ["LINEA_LUIGI_DATABASE_URL"],
        storage_dir=os.environ["LINEA_LUIGI_ARTIFACT_STORAGE_DIR"],
    )


def npy_save(peer: str, mib: int, root: str, prefault_mib: int = 0) -> dict[str, Any]:
    """Seconds for ``store.save(arr)`` (auto: .npy) or ``np.save``; no sync in the timing.

    Each peer first saves a tiny array, untimed (imports and first-use work
    done), and dirty pages of earlier children are flushed before the timer.
    """
    arr, tiny = make_floats(mib), make_floats(1)[:1000]
    extra: dict[str, Any] = {}
    if peer == RAW:
        np.save(os.path.join(root, "warm.npy"), tiny)
        sync()
        start_rss = start_measuring(prefault_mib)
        start = time.perf_counter()
        np.save(os.path.join(root, "raw.npy"), arr)
    elif peer == LINEA:
        store = _store()
        store.save(tiny, NPY_NAME + ".warmup")
        sync()
        start_rss = start_measuring(prefault_mib)
        start = time.perf_counter()
        artifact = store.save(arr, NPY_NAME)
        extra = {"serializer": artifact.serializer, "bytes": artifact.size_bytes}
    else:
        raise ValueError(peer)
    seconds = time.perf_counter() - start
    rss = peak_rss_kb()
    if peer == LINEA and extra["serializer"] != "npy":
        raise RuntimeError(f"linea saved the array with {extra['serializer']!r}, not npy")
    return {
        "seconds": seconds,
        "rss_kb": rss,
        "start_rss_kb": start_rss,
        **extra,
        "check": float_check(arr),
    }


def npy_load(peer: str, mib: int, root: str, prefault_mib: int = 0) -> dict[str, Any]:
    """Seconds for ``store.load`` (digest verified) or ``np.load``, after a tiny warm-up load."""
    value: Any
    if peer == RAW:
        np.load(os.path.join(root, "warm.npy"))
        start_rss = start_measuring(prefault_mib)
        start = time.perf_counter()
        value = np.load(os.path.join(root, "raw.npy"))
    elif peer == LINEA:
        store = _store()
        store.load(NPY_NAME + ".warmup")
        start_rss = start_measuring(prefault_mib)
        start = time.perf_counter()
        value = store.load(NPY_NAME)
    else:
        raise ValueError(peer)
    seconds = time.perf_counter() - start
    rss = peak_rss_kb()
    if not isinstance(value, np.ndarray):
        raise RuntimeError(f"{peer} loaded a {type(value).__name__}, not an ndarray")
    return {
        "seconds": seconds,
        "rss_kb": rss,
        "start_rss_kb": start_rss,
        "check": float_check(value),
    }
