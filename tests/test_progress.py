"""Progress lines for large saves and loads: for a person watching, never in logs."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import linea_luigi as ll
from linea_luigi.values import progress

BIG = progress.THRESHOLD + 6 * 2**20


@pytest.fixture(autouse=True)
def undecided() -> Iterator[None]:
    progress.force(None)
    yield
    progress.force(None)


def test_silent_when_nobody_watches(
    store: ll.ArtifactStore, capfd: pytest.CaptureFixture[str]
) -> None:
    store.save(np.ones(BIG, dtype=np.uint8), "big")
    assert store.load("big").nbytes == BIG
    assert capfd.readouterr().err == ""


def test_a_watched_save_and_load_show_bytes_and_throughput(
    store: ll.ArtifactStore, capfd: pytest.CaptureFixture[str]
) -> None:
    progress.force(True)
    store.save(np.ones(BIG, dtype=np.uint8), "big")
    store.load("big")
    err = capfd.readouterr().err
    assert "saving big: " in err and "loading big v0: " in err
    assert "(100%)" in err
    # a throughput in a size unit per second (a fast disk gives GiB/s)
    assert re.search(r"\d(\.\d)? [KMG]iB/s", err), err
    assert err.endswith("\n")  # the line is finished, not left dangling


def test_small_values_never_show_a_line(
    store: ll.ArtifactStore, capfd: pytest.CaptureFixture[str]
) -> None:
    progress.force(True)
    store.save(np.ones(1024, dtype=np.uint8), "small")
    store.load("small")
    assert capfd.readouterr().err == ""


def _run_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal; return its exit code and what it showed."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower
    )
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(leader)
    assert child.stdout is not None
    child.stdout.read()
    return child.wait(timeout=60), shown.decode(errors="replace")


def test_cli_get_shows_progress_on_a_terminal_only(
    store: ll.ArtifactStore, tmp_path: Path, sqlite_url: str, storage_dir: Path
) -> None:
    store.save(np.ones(BIG, dtype=np.uint8), "big")
    cli = [sys.executable, "-m", "linea_luigi", "--db-url", sqlite_url]
    cli += ["--storage-dir", str(storage_dir), "get", "big", "-o"]
    code, shown = _run_on_a_terminal([*cli, str(tmp_path / "big.npy")])
    assert code == 0, shown
    assert "loading big v0: " in shown and "(100%)" in shown
    piped = subprocess.run([*cli, str(tmp_path / "again.npy")], capture_output=True, text=True)
    assert piped.returncode == 0, piped.stderr
    assert "loading" not in piped.stderr
    assert np.load(tmp_path / "again.npy").nbytes == BIG
