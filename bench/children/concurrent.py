# mypy: disallow-untyped-calls=False
"""Concurrent small saves: P spawned processes x S saves to one name, from a start barrier."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from typing import Any

NAME = "bench.concurrent"


def _linea_worker(
    w: int, db_url: str, storage_dir: str, saves: int, barrier: Any, out: Any
) -> None:
    import linea_luigi as ll

    store = ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir)
    store.save({"warm": w}, f"bench.warm{w}")
    barrier.wait()
    start, errors, first = time.perf_counter(), 0, ""
    for k in range(saves):
        try:
            store.save({"w": w, "k": k}, NAME)
        except Exception as exc:  # counted and reported, never fatal
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"
    out.put((start, time.perf_counter(), errors, first))


def _plain_worker(w: int, db_url: str, root: str, saves: int, barrier: Any, out: Any) -> None:
    import luigi
    import luigi.format

    from .tasks_plain import dump

    def target(k: int | str) -> Any:
        return luigi.LocalTarget(os.path.join(root, f"p{w}", f"{k}.pkl"), format=luigi.format.Nop)

    dump({"warm": w}, target("warm"))
    barrier.wait()
    start, errors, first = time.perf_counter(), 0, ""
    for k in range(saves):
        try:
            dump({"w": w, "k": k}, target(k))
        except Exception as exc:
            errors += 1
            first = first or f"{type(exc).__name__}: {exc}"
    out.put((start, time.perf_counter(), errors, first))


def run(peer: str, db_url: str, storage_dir: str, procs: int, saves: int) -> dict[str, Any]:
    """saves/s from the barrier to the last finish, and including process start."""
    ctx = mp.get_context("spawn")  # each process imports and connects on its own
    barrier, out = ctx.Barrier(procs, timeout=600), ctx.Queue()
    worker = _plain_worker if peer == "plain luigi" else _linea_worker
    t0 = time.perf_counter()
    processes = [
        ctx.Process(target=_report, args=(worker, w, db_url, storage_dir, saves, barrier, out))
        for w in range(procs)
    ]
    for p in processes:
        p.start()
    reports = _collect(processes, out, barrier)
    for p in processes:
        p.join()
    crashed = [r[3] for r in reports if r[0] is None]
    if crashed:
        raise RuntimeError(f"{len(crashed)} of {procs} processes failed: {crashed[0]}")
    start = min(r[0] for r in reports)
    end = max(r[1] for r in reports)
    errors = sum(r[2] for r in reports)
    done = procs * saves - errors
    result: dict[str, Any] = {
        "rate": done / (end - start),  # saves per second
        "with_start": done / (end - t0),
        "errors": errors,
        "first_error": next((r[3] for r in reports if r[3]), ""),
        "versions_ok": None,
    }
    if peer != "plain luigi":
        import linea_luigi as ll

        store = ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir)
        versions = [a.version for a in store.versions(NAME)]
        result["versions_ok"] = versions == list(range(procs * saves))
        result["versions"] = [len(versions), versions[:1], versions[-1:]]
    return result


def _report(worker: Any, w: int, *args: Any) -> None:
    """Run ``worker``; if it raises, report the error instead of leaving the parent waiting."""
    out = args[-1]
    try:
        worker(w, *args)
    except BaseException as exc:
        out.put((None, None, 0, f"worker {w}: {type(exc).__name__}: {exc}"))
        raise


def _collect(processes: list[Any], out: Any, barrier: Any) -> list[tuple[Any, ...]]:
    """One report per process; a failure breaks the barrier so nobody waits for it."""
    reports: list[tuple[Any, ...]] = []
    while len(reports) < len(processes):
        try:
            report = out.get(timeout=1.0)
        except queue.Empty:
            if all(p.exitcode is not None for p in processes):  # gone without reporting
                missing = len(processes) - len(reports)
                reports += [(None, None, 0, "a process exited without reporting")] * missing
            continue
        reports.append(report)
        if report[0] is None:
            barrier.abort()
    return reports
