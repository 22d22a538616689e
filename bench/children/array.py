"""Large array: one task saving a ``uint8`` array (then ``os.sync``); a fresh process loading it."""

from __future__ import annotations

import os
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
