"""The benchmark harness runs every workload at a tiny size, so it never rots.

Timings are never asserted: only that every workload produced a positive number
for every peer, that the concurrent saves kept versions exact, and that linea
wrote the frame as Parquet and the float array as .npy (each load is also checked
against what was saved, by the harness).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "dag",
    "array",
    "lookup",
    "concurrent",
    "small",
    "s3",
    "browse",
    "frame",
    "npy",
    "cache",
    "dedup",
    "tasklock",
}
PEERS = {
    "dag": {"plain luigi", "linea", "gokart"},
    "array": {"plain luigi", "linea", "gokart", "raw"},
    "lookup": {"linea"},
    "concurrent": {"plain luigi", "linea", "linea, incl. process start"},
    "small": {"plain luigi", "linea"},
    "s3": {"linea", "raw"},
    "browse": {"linea"},
    "frame": {"raw", "linea", "gokart", "gokart, snappy"},
    "npy": {"raw", "linea"},
    "dedup": {"first save", "identical value stored"},
}
#: the cache's rows by their label's start: cache off against on, cold and warm
CACHE_PEERS = {
    "S3 save": {"off (today)", "on"},
    "S3 first load": {"off (today)", "cold cache"},
    "second load": {"local storage", "warm cache"},
}
#: the task lock's rows: its cost per task, and one build against four at once
TASKLOCK_PEERS = {
    "task lock per task": {"linea"},
    "4 processes build": {"alone (1 build)", "4 builds at once"},
}
#: the frame's one-column row: linea's column load and pandas', beside linea's whole load
COLUMN_PEERS = {"whole load (linea)", "linea", "raw"}


def test_every_workload_runs_at_tiny_size(tmp_path: Path) -> None:
    out, data = tmp_path / "table.md", tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--size",
            "tiny",
            "--reps",
            "1",
            "--out",
            str(out),
            "--json",
            str(data),
            "--tmp",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections = json.loads(data.read_text())
    assert {s["workload"] for s in sections} == WORKLOADS
    for s in sections:
        expected = _expected_peers(s["workload"], s["label"])
        assert set(s["cells"]) == expected, s["label"]
        for peer, cell in s["cells"].items():
            assert cell["problem"] is None, (s["label"], peer, cell["problem"])
            assert cell["median"] is not None and cell["median"] > 0, (s["label"], peer)
    frame = [s for s in sections if s["workload"] == "frame"]
    assert len(frame) == 3
    for extra in frame[0]["cells"]["linea"]["extras"]:
        assert extra["serializer"] == "parquet", extra
    npy = [s for s in sections if s["workload"] == "npy"]
    for extra in npy[0]["cells"]["linea"]["extras"]:
        assert extra["serializer"] == "npy", extra
    concurrent = [s for s in sections if s["workload"] == "concurrent"]
    assert {s["label"].rsplit(", ", 1)[1] for s in concurrent} == {"SQLite", "PostgreSQL"}
    for s in concurrent:
        for extra in s["cells"]["linea"]["extras"]:
            assert extra["errors"] == 0 and extra["versions_ok"] is True, extra
    locks = [s for s in sections if s["label"].startswith("4 processes build")]
    assert len(locks) == 2
    for s in locks:
        for cell in s["cells"].values():
            assert cell["extras"] and all(e["exact"] for e in cell["extras"]), s["label"]
    dedup = [s for s in sections if s["workload"] == "dedup"]
    assert len(dedup) == 3
    for s in dedup:
        assert all(e["growth_bytes"] == 0 for e in s["cells"]["identical value stored"]["extras"])
    table = out.read_text()
    assert table == proc.stdout
    assert table.count("\n| ") >= sum(len(s["cells"]) for s in sections)


def _expected_peers(workload: str, label: str) -> set[str]:
    if label.startswith("load 1 of 10 columns"):
        return COLUMN_PEERS
    by_label = {"cache": CACHE_PEERS, "tasklock": TASKLOCK_PEERS}.get(workload)
    if by_label is None:
        return PEERS[workload]
    return next(peers for start, peers in by_label.items() if label.startswith(start))
