"""Fan-in DAG: N leaves saving small dicts, one final task loading them all."""

from __future__ import annotations

from typing import Any

from .common import peak_rss_kb, timed_build
from .peers import read_output, task, tasks_for


def _build(peer: str, n: int, root: str) -> float:
    module = tasks_for(peer, root)
    seconds = timed_build([task(module, peer, "Final", n=n)])
    summary = read_output(module, peer, task(module, peer, "Final", n=n))
    if summary != {"n": n, "total": n * (n - 1) // 2}:
        raise AssertionError(f"final task saved {summary!r}")
    return seconds


def cold_then_warm(peer: str, n: int, root: str) -> dict[str, Any]:
    """Build on an empty store, then again with new task instances (all complete)."""
    cold = _build(peer, n, root)
    warm = _build(peer, n, root)
    return {"seconds": cold, "warm": warm, "rss_kb": peak_rss_kb()}


def complete(peer: str, n: int, root: str) -> dict[str, Any]:
    """Build in a new process when every task is already complete."""
    return {"seconds": _build(peer, n, root), "rss_kb": peak_rss_kb()}
