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
WORKLOADS = {"dag", "array", "lookup", "concurrent", "small", "s3", "browse", "frame", "npy"}
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
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sections = json.loads(data.read_text())
    assert {s["workload"] for s in sections} == WORKLOADS
    for s in sections:
        column_row = s["label"].startswith("load 1 of 10 columns")
        expected = COLUMN_PEERS if column_row else PEERS[s["workload"]]
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
    table = out.read_text()
    assert table == proc.stdout
    assert table.count("\n| ") >= sum(len(s["cells"]) for s in sections)
