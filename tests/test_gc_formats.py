"""gc finds orphans of every value format (``.parquet``, ``.npy``, ``.pkl``) and their temp files.

The orphans are made the way they are made in production: a process saving a
value is killed. Killed while its row waits for the database's write lock (held
here by another connection), it leaves a complete value no row references;
killed while a large value is being written, it leaves the value's temporary
sibling (``<final>.tmp-<32 hex>``). gc lists them in a dry run, leaves them
alone while they are younger than the grace period, then removes them, and
never touches files that are not of our layout, whatever their extension.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import numpy as np
import pytest

import linea_luigi as ll

REPO = Path(__file__).resolve().parents[1]
HOUR = 3600

SAVE = """
import sys
import numpy as np
import linea_luigi as ll

store = ll.ArtifactStore(db_url=sys.argv[1], storage_dir=sys.argv[2])
kind = sys.argv[3]
if kind == "table":
    import pyarrow as pa
    value = pa.table({"x": np.arange(1000), "y": np.arange(1000) / 3})
elif kind == "array":
    value = np.arange(1000.0).reshape(10, 100)
elif kind == "pickle":
    value = {"k": list(range(100))}
elif kind == "big-table":  # random: the Parquet file is as large as the data (160 MB)
    import pyarrow as pa
    value = pa.table({"x": np.random.default_rng(0).random(20_000_000)})
else:  # big-array
    value = np.random.default_rng(0).random(20_000_000)
store.save(value, kind)
"""
EXTENSIONS = {
    "table": ".parquet",
    "array": ".npy",
    "pickle": ".pkl",
    "big-table": ".parquet",
    "big-array": ".npy",
}


def _start(db_url: str, storage_dir: Path, kind: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SAVE), db_url, str(storage_dir), kind],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_then_kill(child: subprocess.Popen[str], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL ``child`` as soon as ``ready()``; fail if it ended or took too long first."""
    deadline = time.monotonic() + 120
    try:
        while not ready():
            if child.poll() is not None:
                stderr = child.stderr.read() if child.stderr else ""
                pytest.fail(
                    f"the saving process ended ({child.returncode}) before {what}:\n{stderr}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.002)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@contextmanager
def write_lock_held(db_path: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock: every save waits before its row."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []


def _complete_orphan(db_url: str, db_path: Path, storage_dir: Path, kind: str) -> str:
    """A value written in full whose save was killed before its row committed; its location."""
    folder = storage_dir / kind
    ext = EXTENSIONS[kind]
    before = set(_files(folder))

    def written() -> bool:
        return any(p.name.endswith(ext) for p in set(_files(folder)) - before)

    with write_lock_held(db_path):
        _wait_then_kill(_start(db_url, storage_dir, kind), written, f"the {ext} value of {kind}")
    [orphan] = set(_files(folder)) - before
    assert orphan.name.endswith(ext) and ".tmp-" not in orphan.name
    return f"{kind}/{orphan.name}"


def _temp_orphan(db_url: str, storage_dir: Path, kind: str) -> str:
    """The temporary sibling of a large value whose save was killed mid-write; its location."""
    folder = storage_dir / kind

    def partly_written() -> bool:
        try:
            return any(".tmp-" in p.name and p.stat().st_size > 8 * 2**20 for p in _files(folder))
        except FileNotFoundError:  # renamed in between: the write finished, which fails below
            return False

    _wait_then_kill(_start(db_url, storage_dir, kind), partly_written, f"a partial {kind}")
    [temp] = _files(folder)
    final, marker, suffix = temp.name.partition(".tmp-")
    assert marker and final.endswith(EXTENSIONS[kind]) and len(suffix) == 32
    return f"{kind}/{temp.name}"


def _age(storage_dir: Path, locations: list[str], seconds: float) -> None:
    then = time.time() - seconds
    for location in locations:
        os.utime(storage_dir / location, (then, then))


def _foreign(hex_: str) -> list[str]:
    """Files with our extensions that are not of our layout: gc never deletes them."""
    return [
        "x.parquet",  # no folder
        "table/notes.parquet",  # not 32 hex
        f"table/{hex_}.parquet.bak",
        f"table/{hex_.upper()}.npy",  # upper-case hex
        f"table/nested/{hex_}.npy",  # one folder too deep
        f"array/{hex_}.npy.tmp-{hex_[:8]}",  # a short temp suffix
        f"array/{hex_}.npz",
        f"array/{hex_}.parquet-old",
    ]


def test_gc_finds_killed_saves_of_every_format(
    sqlite_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    store = ll.ArtifactStore(sqlite_url, str(storage_dir))
    live = [  # live values in the same folders as two of the orphans
        store.save(np.arange(5.0), "array"),
        store.save({"kept": True}, "pickle"),
    ]
    db_path = tmp_path / "meta.sqlite"
    complete = [
        _complete_orphan(sqlite_url, db_path, storage_dir, kind)
        for kind in ("table", "array", "pickle")
    ]
    temps = [_temp_orphan(sqlite_url, storage_dir, kind) for kind in ("big-table", "big-array")]
    orphans = sorted(complete + temps)
    foreign = _foreign(uuid.uuid4().hex)
    for location in foreign:
        (storage_dir / location).parent.mkdir(parents=True, exist_ok=True)
        (storage_dir / location).write_bytes(b"not ours")
    _age(storage_dir, foreign, 3 * HOUR)
    # the killed saves took no version
    assert [store.latest_version(k) for k in ("table", "array", "pickle")] == [-1, 0, 0]

    young = store.gc(dry_run=False)  # default grace: one hour, and the orphans are seconds old
    assert young.orphans == []
    assert sorted(o.location for o in young.young_orphans) == orphans
    assert all((storage_dir / o).exists() for o in orphans)

    _age(storage_dir, orphans, 2 * HOUR)
    planned = store.gc()
    assert planned.dry_run
    assert sorted(o.location for o in planned.orphans) == orphans
    assert planned.size_bytes == sum((storage_dir / o).stat().st_size for o in orphans)
    assert all((storage_dir / o).exists() for o in orphans)

    done = store.gc(dry_run=False)
    assert sorted(o.location for o in done.orphans) == orphans
    assert done.failed == [] and done.versions == []
    assert not any((storage_dir / o).exists() for o in orphans)
    assert all((storage_dir / f).read_bytes() == b"not ours" for f in foreign)
    assert np.array_equal(store.load("array"), np.arange(5.0))
    assert store.load("pickle") == {"kept": True}
    assert all(store.values.exists(a.location) for a in live)
    assert store.gc(dry_run=False).orphans == []


# -- on S3 -------------------------------------------------------------------------------------


@pytest.fixture
def s3_store(bucket: str, endpoint: str, tmp_path: Path) -> ll.ArtifactStore:
    return ll.ArtifactStore(
        f"sqlite:///{tmp_path / 'meta.sqlite'}",
        f"s3://{bucket}/values",
        storage_options={"client_kwargs": {"endpoint_url": endpoint}},
    )


def test_gc_on_s3_finds_parquet_and_npy_orphans(
    s3_store: ll.ArtifactStore, bucket: str, endpoint: str
) -> None:
    """Object storage lists every format too (objects keep S3's own times: a zero grace)."""
    import pyarrow as pa

    kept = [s3_store.save(pa.table({"x": [1, 2]}), "table"), s3_store.save(np.ones(3), "array")]
    fs, root = fsspec.core.url_to_fs(
        f"s3://{bucket}/values", client_kwargs={"endpoint_url": endpoint}
    )
    hex_ = uuid.uuid4().hex
    orphans = sorted(
        [
            f"table/{uuid.uuid4().hex}.parquet",
            f"table/{uuid.uuid4().hex}.parquet.tmp-{uuid.uuid4().hex}",
            f"array/{uuid.uuid4().hex}.npy",
            f"array/{uuid.uuid4().hex}.npy.tmp-{uuid.uuid4().hex}",
        ]
    )
    foreign = _foreign(hex_)
    for location in orphans + foreign:
        fs.pipe_file(f"{root}/{location}", b"0123456789")

    assert s3_store.gc(dry_run=False).orphans == []  # all young under the default grace
    planned = s3_store.gc(grace="0s")
    assert sorted(o.location for o in planned.orphans) == orphans
    assert all(o.uri.startswith(f"s3://{bucket}/values/") for o in planned.orphans)
    done = s3_store.gc(grace="0s", dry_run=False)
    assert sorted(o.location for o in done.orphans) == orphans
    fs.invalidate_cache()
    assert not any(fs.exists(f"{root}/{o}") for o in orphans)
    assert all(fs.exists(f"{root}/{f}") for f in foreign)
    assert all(s3_store.values.exists(a.location) for a in kept)
    assert s3_store.load("table").column("x").to_pylist() == [1, 2]
