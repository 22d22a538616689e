"""S3 through moto on loopback: linea save/load vs raw s3fs ``pipe_file``/``cat_file``."""

from __future__ import annotations

import time
from typing import Any

from .common import fingerprint, make_array, peak_rss_kb


def _store(db_url: str, endpoint: str, prefix: str) -> Any:
    import linea_luigi as ll

    return ll.ArtifactStore(
        db_url=db_url,
        storage_dir=f"s3://{prefix}",
        storage_options={"client_kwargs": {"endpoint_url": endpoint}},
    )


def _fs(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})


def save(peer: str, mib: int, db_url: str, endpoint: str, prefix: str) -> dict[str, Any]:
    """Seconds to upload ``mib`` MiB after a small untimed warm-up upload."""
    arr = make_array(mib)
    if peer == "linea":
        store = _store(db_url, endpoint, prefix)
        store.save(b"warm", "bench.s3warm")
        start = time.perf_counter()
        store.save(arr, "bench.s3")
    else:
        fs = _fs(endpoint)
        fs.pipe_file(f"{prefix}/warm", b"warm")
        data = arr.tobytes()
        start = time.perf_counter()
        fs.pipe_file(f"{prefix}/raw.bin", data)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_kb": peak_rss_kb(), "check": fingerprint(arr)}


def load(peer: str, mib: int, db_url: str, endpoint: str, prefix: str) -> dict[str, Any]:
    """Seconds to download it again in a new process, after a small untimed warm-up read."""
    import numpy as np

    value: Any
    if peer == "linea":
        store = _store(db_url, endpoint, prefix)
        store.load("bench.s3warm")
        start = time.perf_counter()
        value = store.load("bench.s3")
    else:
        fs = _fs(endpoint)
        fs.cat_file(f"{prefix}/warm")
        start = time.perf_counter()
        value = np.frombuffer(fs.cat_file(f"{prefix}/raw.bin"), dtype=np.uint8)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_kb": peak_rss_kb(), "check": fingerprint(value)}
