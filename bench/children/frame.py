# mypy: disallow-untyped-calls=False
"""A pandas frame as Parquet: one save or one load per process.

Peers: raw = ``df.to_parquet(path)`` / ``pd.read_parquet(path)`` (pyarrow,
snappy); linea = ``store.save(df)`` / ``store.load(name)`` (auto serializer:
Parquet, digest verified) and ``store.load(name, columns=[...])``; gokart = a
``TaskOnKart`` whose output is ``make_target("frame.parquet")`` (gokart's
``ParquetFileProcessor``: gzip by default, or the same processor with snappy).
Every child first does the same operation on a tiny frame, untimed, so that
imports and first-use work are outside the timing for every peer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet  # noqa: F401 (imported before timing, for every peer)

from ..harness import GOKART, LINEA, RAW
from .array import start_measuring
from .common import peak_rss_kb, sync, timed_build

NAME = "bench.frame"
WARM_NAME = "bench.frame.warmup"
WARM_ROWS = 100
#: the one column of the column loads (float64, random: no page is cheap to decode)
COLUMN = "x"
#: distinct strings in the string column (Parquet keeps them dictionary-encoded)
VOCABULARY = 20_000
#: timings of gokart's ``dump`` inside the task's ``run`` (luigi.build adds scheduling)
KART_DUMPS: list[float] = []
#: what gokart's task dumps, by row count (a task parameter cannot carry a frame)
FRAMES: dict[int, pd.DataFrame] = {}

Op = Callable[[], Any]


def make_frame(rows: int) -> pd.DataFrame:
    """``rows`` x 10 columns, seeded: 4 integer, 4 float, a string and a timestamp column."""
    rng = np.random.default_rng(15)
    words = np.array(
        [f"customer-{k:06d}-{rng.integers(1 << 30):08x}" for k in range(VOCABULARY)], dtype=object
    )
    seconds = np.sort(rng.integers(0, 365 * 86400, rows))
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "qty": rng.integers(0, 1000, rows, dtype=np.int32),
            "store": rng.integers(0, 500, rows, dtype=np.int64),
            "flag": rng.integers(0, 2, rows, dtype=np.int8),
            "x": rng.standard_normal(rows),
            "y": rng.standard_normal(rows),
            "price": np.round(rng.uniform(0, 100, rows), 2),
            "score": rng.standard_normal(rows).astype(np.float32),
            "name": pd.array(words[rng.integers(0, VOCABULARY, rows)], dtype="str"),
            "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(seconds, unit="s"),
        }
    )


def fingerprint(df: pd.DataFrame) -> list[Any]:
    """Rows, column names and dtypes, and a hash of every 997th row (and the last)."""
    sample = pd.concat([df.iloc[::997], df.iloc[-1:]])
    digest = int(pd.util.hash_pandas_object(sample, index=False).sum())
    return [len(df), [f"{c}:{t}" for c, t in df.dtypes.items()], digest]


def _store() -> Any:
    import linea_luigi as ll

    return ll.ArtifactStore(
        db_url=os.environ["LINEA_LUIGI_DATABASE_URL"],
        storage_dir=os.environ["LINEA_LUIGI_ARTIFACT_STORAGE_DIR"],
    )


def _kart_task(root: str, rows: int, compression: str) -> Any:
    """gokart's task for a frame of ``rows`` rows ("" = gokart's own processor, gzip)."""
    import gokart
    import luigi
    from gokart.file_processor import ParquetFileProcessor

    from .tasks_kart import configure

    configure(root)

    class KartFrame(gokart.TaskOnKart):  # type: ignore[type-arg]
        rows = luigi.IntParameter()
        compression = luigi.Parameter(default="")

        def output(self) -> Any:
            if not self.compression:
                return self.make_target("frame.parquet")
            processor = ParquetFileProcessor(compression=self.compression)
            return self.make_target("frame.parquet", processor=processor)

        def run(self) -> None:
            start = time.perf_counter()
            self.dump(FRAMES[self.rows])
            KART_DUMPS.append(time.perf_counter() - start)

    return lambda n: KartFrame(rows=n, compression=compression)  # type: ignore[call-arg]


def _saver(peer: str, root: str, compression: str, df: pd.DataFrame) -> Op:
    """Warm the peer up on a tiny frame and return the timed save of ``df``."""
    tiny = make_frame(WARM_ROWS)
    if peer == RAW:
        tiny.to_parquet(os.path.join(root, "warm.parquet"), compression="snappy")
        return lambda: df.to_parquet(os.path.join(root, "raw.parquet"), compression="snappy")
    if peer == LINEA:
        store = _store()
        store.save(tiny, WARM_NAME)
        return lambda: store.save(df, NAME)
    if peer == GOKART:
        make = _kart_task(root, len(df), compression)
        FRAMES.update({WARM_ROWS: tiny, len(df): df})
        timed_build([make(WARM_ROWS)])
        return lambda: timed_build([make(len(df))])
    raise ValueError(peer)


def save(
    peer: str, rows: int, root: str, compression: str = "snappy", prefault_mib: int = 0
) -> dict[str, Any]:
    """Seconds for one save of the frame; peak RSS of that save (the frame resident)."""
    df = make_frame(rows)
    op = _saver(peer, root, compression, df)
    sync()  # dirty pages of earlier children are not this save's to write back
    start_rss = start_measuring(prefault_mib)
    start = time.perf_counter()
    out = op()
    seconds = time.perf_counter() - start
    rss = peak_rss_kb()
    extra: dict[str, Any] = {"start_rss_kb": start_rss}
    if peer == LINEA:
        if out.serializer != "parquet":
            raise RuntimeError(f"linea saved the frame with {out.serializer!r}, not parquet")
        extra.update(serializer=out.serializer, bytes=out.size_bytes)
    if peer == GOKART:  # the dump alone, as the others' save alone; the build beside it
        extra["build_seconds"], seconds = seconds, KART_DUMPS[-1]
    return {
        "seconds": seconds,
        "rss_kb": rss,
        **extra,
        "check": fingerprint(df),
        "check_column": fingerprint(df[[COLUMN]]),
    }


def _loader(peer: str, root: str, rows: int, compression: str, columns: list[str] | None) -> Op:
    """Warm the peer up on the tiny frame its save wrote; return the timed load."""
    if peer == RAW:
        pd.read_parquet(os.path.join(root, "warm.parquet"), columns=columns)
        return lambda: pd.read_parquet(os.path.join(root, "raw.parquet"), columns=columns)
    if peer == LINEA:
        store = _store()
        store.load(WARM_NAME, columns=columns)
        return lambda: store.load(NAME, columns=columns)
    if peer == GOKART and columns is None:
        make = _kart_task(root, rows, compression)
        make(WARM_ROWS).output().load()
        target = make(rows).output()
        return lambda: target.load()
    raise ValueError(f"{peer} with columns={columns}")


def load(
    peer: str,
    rows: int,
    root: str,
    compression: str = "snappy",
    columns: list[str] | None = None,
    prefault_mib: int = 0,
) -> dict[str, Any]:
    """Seconds for one load (all columns, or ``columns``) in a process that does nothing else."""
    op = _loader(peer, root, rows, compression, columns)
    start_rss = start_measuring(prefault_mib)
    start = time.perf_counter()
    value = op()
    seconds = time.perf_counter() - start
    rss = peak_rss_kb()
    if not isinstance(value, pd.DataFrame):
        raise RuntimeError(f"{peer} loaded a {type(value).__name__}, not a pandas DataFrame")
    return {
        "seconds": seconds,
        "rss_kb": rss,
        "start_rss_kb": start_rss,
        "check": fingerprint(value),
    }
