"""The artifact browser's pages, fetched over HTTP from a real ``linea-luigid``.

The store gets ``rows`` distinct names (one version each: the most groups a
listing can have per row), bulk-inserted like the lookup workload's rows, with
ten task families so the family filter has something to find.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .lookup import BATCH, filler

FAMILIES = 10


def name_of(i: int) -> str:
    return f"bench.n{i:06d}"


def populate(db_url: str, storage_dir: str, rows: int) -> dict[str, Any]:
    """Create the store with one real save, then bulk-insert ``rows`` one-version names."""
    import linea_luigi as ll

    ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir).save({"seed": 1}, "bench.seed")
    engine = sa.create_engine(db_url)
    table = sa.Table("ll_artifacts", sa.MetaData(), autoload_with=engine)
    named = {"id", "name", "version", "location", "task_family", "task_id"}
    fillers = {c.name: f for c in table.columns if c.name not in named and (f := filler(c))}
    with engine.begin() as conn:
        for start in range(0, rows, BATCH):
            batch = []
            for i in range(start, min(rows, start + BATCH)):
                row = {col: fill(i) for col, fill in fillers.items()}
                row.update(
                    name=name_of(i),
                    version=0,
                    location=f"bench/{i}.pkl",
                    task_family=f"Family{i % FAMILIES}",
                    task_id=f"Family{i % FAMILIES}_{i}",
                )
                batch.append(row)
            conn.execute(table.insert(), batch)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE ll_artifacts")
    engine.dispose()
    return {"rows": rows + 1}


def pages(rows: int) -> dict[str, str]:
    """What a user opens, by the label the table shows."""
    return {
        "first": "/artifacts",
        "middle": f"/artifacts?after={name_of(rows // 2)}",
        "family": "/artifacts?family=Family3",
        "search": f"/artifacts?q=n{rows // 3 // 100:04d}",
        "version": f"/artifacts/{name_of(rows // 3)}/0",
        "api": "/api/artifacts?limit=1000",
    }


def measure(db_url: str, rows: int, calls: int) -> dict[str, Any]:
    """Median milliseconds per page, each fetched ``calls`` times after one warm-up."""
    with _scheduler(db_url) as base:
        result: dict[str, Any] = {}
        for label, path in pages(rows).items():
            _fetch(base + path)
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                _fetch(base + path)
                times.append((time.perf_counter() - t0) * 1000)
            result[label] = statistics.median(times)
    result["seconds"] = result["first"]
    return result


def _fetch(url: str) -> None:
    """GET the whole page (urllib raises on any status but 2xx)."""
    with urllib.request.urlopen(url, timeout=60) as answer:
        if not answer.read():
            raise AssertionError(f"{url} answered an empty page")


class _scheduler:
    """``linea-luigid`` on a free loopback port, reading ``db_url``; yields its base URL."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.folder = Path(tempfile.mkdtemp(prefix="browse-"))

    def __enter__(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = self.folder / "luigi.cfg"
        cfg.write_text(f"[artifact_store]\ndb_connection = {self.db_url}\n")
        exe = Path(sys.executable).with_name("linea-luigid")
        command = (
            [str(exe)] if exe.exists() else [sys.executable, "-m", "linea_luigi.integration.luigid"]
        )
        env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
        self.proc = subprocess.Popen(
            [
                *command,
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
                "--state-path",
                str(self.folder / "state.pickle"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.folder,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("linea-luigid did not start") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
