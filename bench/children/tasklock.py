# mypy: disallow-untyped-calls=False
"""The task lock: what it costs a task, and several builds of one DAG at once.

``per_task``: mixin tasks with an empty ``run()`` called in turn, on a store
with the lock and on the same database without it; the difference per task is
the lock's cost (acquire, ``complete()`` asked again, release).
``together``: P spawned processes each run ``luigi.build`` of the same DAG
from a start barrier; every run is noted in a shared run log and counted.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import luigi

import linea_luigi as ll

from .common import quiet

ROUNDS = 5
#: set in each process that builds: where runs are noted, how long each run() works
RUNLOG: list[str] = []
SLEEP: list[float] = []
STORES: dict[str, ll.ArtifactStore] = {}


def _note(task: Any) -> None:
    with open(RUNLOG[0], "a") as log:  # one short line per run: appended whole
        log.write(task.task_id + "\n")


class LockLeaf(ll.ArtifactTaskMixin, luigi.Task):
    artifact_name = "bench.lock.leaf"
    i = luigi.IntParameter()

    def run(self) -> None:
        _note(self)
        time.sleep(SLEEP[0])
        self.save(self.i)


class LockTop(ll.ArtifactTaskMixin, luigi.Task):
    artifact_name = "bench.lock.top"
    n = luigi.IntParameter()

    def requires(self) -> list[LockLeaf]:
        return [LockLeaf(i=i) for i in range(self.n - 1)]

    def run(self) -> None:
        _note(self)
        time.sleep(SLEEP[0])
        self.save(sum(self.load_input()))


class LockNoop(ll.ArtifactTaskMixin, luigi.Task):
    """A task whose run() does nothing: what is left is the lock around it."""

    artifact_name = "bench.lock.noop"
    i = luigi.IntParameter()
    lock = luigi.BoolParameter()

    def artifact_store(self) -> ll.ArtifactStore:
        return STORES["on" if self.lock else "off"]

    def run(self) -> None:
        pass


def _per_task_us(lock: bool, rnd: int, tasks: int) -> float:
    made = [LockNoop(i=rnd * tasks + i, lock=lock) for i in range(tasks)]
    for task in made:  # keys and targets computed before the clock starts, as in a build
        task.output()
    start = time.perf_counter()
    for task in made:
        task.run()
    return (time.perf_counter() - start) / tasks * 1e6


def per_task(db_url: str, storage_dir: str, tasks: int) -> dict[str, Any]:
    """µs per task of run() with the lock minus without it (medians of alternating rounds)."""
    STORES["on"] = ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir)
    STORES["off"] = ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir, task_lock=False)
    for store in STORES.values():
        store.exists("bench.lock.noop")  # schema checked, connections open
    _per_task_us(True, 10_000, 20)  # warm: statements compiled, renewer started
    on, off = [], []
    for rnd in range(ROUNDS):
        off.append(_per_task_us(False, rnd, tasks))
        on.append(_per_task_us(True, rnd, tasks))
    overhead = statistics.median(on) - statistics.median(off)
    return {"overhead_us": overhead, "on_us": on, "off_us": off}


def _build(w: int, db_url: str, storage_dir: str, n: int, barrier: Any, out: Any) -> None:
    quiet()
    ll.options.set("database_url", db_url)
    ll.options.set("artifact_storage_dir", storage_dir)
    ll.artifact_store().exists("bench.lock.top")  # connected, schema checked
    barrier.wait()
    start = time.perf_counter()
    ok = luigi.build([LockTop(n=n)], local_scheduler=True, workers=1, log_level="CRITICAL")
    out.put((w, start, time.perf_counter(), True if ok else "luigi.build reported a failure"))


def _worker(w: int, runlog: str, sleep: float, *args: Any) -> None:
    RUNLOG[:] = [runlog]
    SLEEP[:] = [sleep]
    try:
        _build(w, *args)
    except BaseException as exc:
        args[-1].put((w, None, None, f"{type(exc).__name__}: {exc}"))
        args[-2].abort()
        raise


def together(db_url: str, storage_dir: str, procs: int, n: int, sleep: float) -> dict[str, Any]:
    """Wall time from the barrier to the last build's end; every run() counted."""
    runlog = str(Path(storage_dir).parent / f"runs-{os.getpid()}.log")
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(procs, timeout=300), ctx.Queue()
    args = (runlog, sleep, db_url, storage_dir, n, barrier, out)
    processes = [ctx.Process(target=_worker, args=(w, *args)) for w in range(procs)]
    for p in processes:
        p.start()
    reports = [out.get(timeout=600) for _ in processes]
    for p in processes:
        p.join()
    failed = [r[3] for r in reports if r[3] is not True]
    if failed:
        raise RuntimeError(f"{len(failed)} of {procs} builds failed: {failed[0]}")
    runs = Counter(Path(runlog).read_text().splitlines())
    return {
        "seconds": max(r[2] for r in reports) - min(r[1] for r in reports),
        "runs": sum(runs.values()),
        "exact": len(runs) == n and set(runs.values()) == {1},
    }
