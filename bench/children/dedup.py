"""Identical values stored once: the first save of a value, then a save of the same value
under another name in a new process (the rerun that produced the same output)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import fingerprint, make_array, peak_rss_kb, sync

FIRST, AGAIN = "first save", "identical value stored"
#: the name each mode saves under (AGAIN: another name, the same value)
NAMES = {FIRST: "bench.dedup.first", AGAIN: "bench.dedup.again"}


def _store(endpoint: str | None) -> Any:
    """The store of the environment's database, on its folder or (``endpoint``) on S3."""
    import linea_luigi as ll

    root = os.environ["LINEA_LUIGI_ARTIFACT_STORAGE_DIR"]
    if endpoint is None:
        return ll.ArtifactStore(os.environ["LINEA_LUIGI_DATABASE_URL"], root)
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    return ll.ArtifactStore(os.environ["LINEA_LUIGI_DATABASE_URL"], root, options)


def stored_bytes(endpoint: str | None) -> int:
    """Bytes of every file or object under the storage root, listed by the folder or S3."""
    root = os.environ["LINEA_LUIGI_ARTIFACT_STORAGE_DIR"]
    if endpoint is None:
        return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    found = fs.find(root.removeprefix("s3://"), detail=True).values()
    return sum(int(info["size"]) for info in found)


def _check_shared(store: Any, mode: str, names: list[str]) -> None:
    """In ``AGAIN`` mode each saved row must point at the first save's object."""
    if mode != AGAIN:
        return
    for name in names:
        first = name.replace(NAMES[AGAIN], NAMES[FIRST], 1)
        if store.get(name).location != store.get(first).location:
            raise RuntimeError(f"{name} was stored again instead of sharing {first}'s value")


def prefault(mib: int) -> None:
    """Touch and free ``mib`` MiB, so that the timed save gets memory already backed; reset
    the peak RSS.

    This VM hands freed memory back to its host, and the first touch of such
    a page costs a host fault: without this, whichever save happened to get
    those pages measured 2-4x slower (see ``children.array.start_measuring``).
    """
    if mib:
        scratch = np.empty(mib << 20, dtype=np.uint8)
        scratch.fill(1)
        del scratch
    try:  # the peak RSS reported is then the save's own (with the array resident)
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:  # not Linux: the peak covers the whole process
        pass


def save_array(
    mode: str, mib: int, endpoint: str | None = None, prefault_mib: int = 0
) -> dict[str, Any]:
    """Seconds for ``store.save`` of a ``mib`` MiB uint8 array (.npy); storage growth in bytes.

    An untimed warm-up save first (imports, schema, connection); dirty pages
    are flushed and ``prefault_mib`` MiB touched before the timer, as in the
    npy workload. ``endpoint``: the storage root is on that S3 server.
    """
    arr = make_array(mib)
    store = _store(endpoint)
    store.save(np.arange(10), NAMES[mode] + ".warmup")
    sync()
    prefault(prefault_mib)
    before = stored_bytes(endpoint)
    start = time.perf_counter()
    artifact = store.save(arr, NAMES[mode])
    seconds = time.perf_counter() - start
    growth = stored_bytes(endpoint) - before
    _check_shared(store, mode, [NAMES[mode]])
    return {
        "seconds": seconds,
        "rss_kb": peak_rss_kb(),
        "growth_bytes": growth,
        "bytes": artifact.size_bytes,
        "serializer": artifact.serializer,
        "check": fingerprint(arr),
    }


def save_small(mode: str, count: int) -> dict[str, Any]:
    """Milliseconds per ``store.save`` of ``count`` small dicts (pickled), and storage growth."""
    values = [{"row": i, "columns": list(range(50)), "label": f"value {i}"} for i in range(count)]
    names = [f"{NAMES[mode]}.{i}" for i in range(count)]
    store = _store(None)
    store.save({"warm": mode}, NAMES[mode] + ".warmup")
    sync()
    before = stored_bytes(None)
    start = time.perf_counter()
    for value, name in zip(values, names, strict=True):
        store.save(value, name)
    ms = (time.perf_counter() - start) / count * 1000
    growth = stored_bytes(None) - before
    _check_shared(store, mode, names)
    return {"ms": ms, "rss_kb": peak_rss_kb(), "growth_bytes": growth, "saves": count}
