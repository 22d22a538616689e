"""The benchmark harness runs every workload at a tiny size, so it never rots.

Timings are never asserted: only that every workload produced a positive number
for every peer and that the concurrent saves kept versions exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = {"dag", "array", "lookup", "concurrent", "small", "s3", "browse"}
PEERS = {
    "dag": {"plain luigi", "linea", "gokart"},
    "array": {"plain luigi", "linea", "gokart", "raw"},
    "lookup": {"linea"},
    "concurrent": {"plain luigi", "linea", "linea, incl. process start"},
    "small": {"plain luigi", "linea"},
    "s3": {"linea", "raw"},
    "browse": {"linea"},
}


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
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections = json.loads(data.read_text())
    assert {s["workload"] for s in sections} == WORKLOADS
    for s in sections:
        assert set(s["cells"]) == PEERS[s["workload"]], s["label"]
        for peer, cell in s["cells"].items():
            assert cell["problem"] is None, (s["label"], peer, cell["problem"])
            assert cell["median"] is not None and cell["median"] > 0, (s["label"], peer)
    concurrent = [s for s in sections if s["workload"] == "concurrent"]
    assert {s["label"].rsplit(", ", 1)[1] for s in concurrent} == {"SQLite", "PostgreSQL"}
    for s in concurrent:
        for extra in s["cells"]["linea"]["extras"]:
            assert extra["errors"] == 0 and extra["versions_ok"] is True, extra
    table = out.read_text()
    assert table == proc.stdout
    assert table.count("\n| ") >= sum(len(s["cells"]) for s in sections)
