"""The local value cache: S3 (moto on loopback) saves and loads with the cache off, cold, warm.

One operation per process. ``kind`` is ``npy`` (one float64 array, stored as
``.npy``) or ``pickle`` (a dict of float64 arrays, cloudpickle with
out-of-band buffers). ``cache_dir`` is ``none`` (today's behaviour) or a
folder; ``storage`` is an ``s3://`` prefix or a local folder. Every child
first does the same operation on a tiny value, untimed, so that imports,
connections and first-use work are outside the timing; and memory is
touched and freed first (``array.start_measuring``: this VM hands freed
pages back to its host, and whichever step first touches fresh pages, the
cache's copy among them, would pay the host's faults).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from .array import start_measuring
from .common import fingerprint, peak_rss_kb

NAME = "bench.cache"
WARM_NAME = "bench.cache.warmup"
#: arrays in the pickled dict
PARTS = 8


def make_value(kind: str, mib: int, seed: int = 16) -> Any:
    """``mib`` MiB of seeded float64 data: one array (npy) or a dict of arrays (pickle)."""
    n = (mib << 20) // 8
    rng = np.random.default_rng(seed)
    if kind == "npy":
        return rng.random(n)
    part = n // PARTS
    value: dict[str, Any] = {f"a{i}": rng.random(part) for i in range(PARTS)}
    value["meta"] = {"rows": part, "source": "bench"}
    return value


def check_of(value: Any) -> list[Any]:
    """A cheap fingerprint of an array, or of every array in a dict."""
    if isinstance(value, dict):
        return [fingerprint(value[k]) for k in sorted(value) if k != "meta"]
    return fingerprint(value)


def _store(db_url: str, storage: str, endpoint: str, cache_dir: str) -> Any:
    import linea_luigi as ll

    options = {"client_kwargs": {"endpoint_url": endpoint}} if storage.startswith("s3://") else {}
    return ll.ArtifactStore(db_url, storage, options, cache_dir=cache_dir)


def save(
    kind: str,
    mib: int,
    db_url: str,
    storage: str,
    endpoint: str,
    cache_dir: str,
    prefault_mib: int = 0,
) -> dict[str, Any]:
    """Seconds to save the value (after an untimed small save)."""
    value = make_value(kind, mib)
    store = _store(db_url, storage, endpoint, cache_dir)
    store.save(make_value(kind, 1, seed=17), WARM_NAME)  # never the measured value
    start_measuring(prefault_mib)
    cpu, start = time.process_time(), time.perf_counter()
    store.save(value, NAME)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": seconds, "cpu_s": cpu, "rss_kb": peak_rss_kb(), "check": check_of(value)}


def load(
    kind: str,
    mib: int,
    db_url: str,
    storage: str,
    endpoint: str,
    cache_dir: str,
    prefault_mib: int = 0,
) -> dict[str, Any]:
    """Seconds to load the value in a new process (after an untimed small load).

    Also the CPU seconds of all its threads (``cpu_s``) and whether the cache
    held the value before the load (``cached``).
    """
    store = _store(db_url, storage, endpoint, cache_dir)
    store.load(WARM_NAME)
    artifact = store.get(NAME)
    path = None if store.cache is None else store.cache.entry_path(artifact.digest)
    cached = path is not None and os.path.exists(path)
    start_measuring(prefault_mib)
    cpu, start = time.process_time(), time.perf_counter()
    value = store.load_artifact(artifact)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "rss_kb": peak_rss_kb(),
        "check": check_of(value),
        "cached": cached,
        "serializer": artifact.serializer,
    }
