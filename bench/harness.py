"""Run children, collect their numbers, and hold results until the table is drawn."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sizes import Sizes
from .worker import RESULT_MARK

REPO_ROOT = Path(__file__).resolve().parent.parent
GOKART_MISSING = "not installed (pip install -e '.[bench]')"

#: peer names, in the order every rep runs them (rep 1: plain, linea, gokart, raw; rep 2: ...)
PLAIN, LINEA, GOKART, RAW = "plain luigi", "linea", "gokart", "raw"


class ChildError(RuntimeError):
    """A measurement child failed; the message ends with its stderr tail."""


@dataclass
class Cell:
    """Every repetition of one peer in one table row."""

    unit: str
    values: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None  # "not installed ..." or the error of a failed child

    def add(self, result: dict[str, Any], key: str = "seconds") -> None:
        """Append one repetition's ``result[key]`` (and its peak RSS, if reported)."""
        self.values.append(float(result[key]))
        if "rss_kb" in result:
            self.rss_mib.append(result["rss_kb"] / 1024)
        self.extras.append(result)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values and not self.problem else None

    @property
    def median_rss(self) -> float | None:
        return statistics.median(self.rss_mib) if self.rss_mib and not self.problem else None


#: verdict for a row: (median of each peer) -> "yes" / "NO" / "-" and an explanation
Check = Callable[[dict[str, Cell]], str]


@dataclass
class Section:
    """One table row group: a workload variant measured for several peers."""

    workload: str  # --only key: dag, array, lookup, concurrent, small, s3, browse
    label: str
    cells: dict[str, Cell]
    base: str | None = PLAIN  # peer the ratio column divides by; None for "-"
    target: str = ""
    check: Check | None = None
    notes: str = ""

    def cell(self, peer: str) -> Cell:
        return self.cells[peer]


@dataclass
class Context:
    """Options of this run plus the plumbing every workload needs."""

    sizes: Sizes
    reps: int
    root: Path
    drop_caches: bool = False
    gokart: bool = True
    failures: list[str] = field(default_factory=list)

    def child_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The caller's environment, isolated: own HOME and luigi.cfg, no linea settings."""
        env = dict(os.environ)
        for var in ("LINEA_LUIGI_DATABASE_URL", "LINEA_LUIGI_ARTIFACT_STORAGE_DIR"):
            env.pop(var, None)
        # PYTHONPATH first (the code to measure), then this repository for the bench package
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO_ROOT)])
        env["HOME"] = str(self.root / "home")
        env["LUIGI_CONFIG_PATH"] = str(self.root / "luigi.cfg")
        env.update(extra or {})
        return env

    def child(
        self,
        target: str,
        kwargs: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 3600,
    ) -> dict[str, Any]:
        """Run ``bench.children.<target>`` in a fresh interpreter and return its result."""
        cwd = self.root / "cwd"  # never the repository: its linea_luigi would shadow PYTHONPATH
        proc = subprocess.run(
            [sys.executable, "-m", "bench.worker", target, json.dumps(kwargs or {})],
            cwd=cwd,
            env=self.child_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(RESULT_MARK) and proc.returncode == 0:
                result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
                return result
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ChildError(f"{target} exited {proc.returncode}:\n{tail}")

    def record(
        self,
        cell: Cell,
        target: str,
        kwargs: dict[str, Any],
        env: dict[str, str] | None = None,
        key: str = "seconds",
    ) -> dict[str, Any] | None:
        """Run one repetition of ``target`` into ``cell``; a failure marks the cell instead."""
        if cell.problem:
            return None
        try:
            result = self.child(target, kwargs, env)
        except (ChildError, subprocess.TimeoutExpired) as exc:
            self.fail(cell, str(exc))
            return None
        cell.add(result, key)
        return result

    def fail(self, cell: Cell, message: str) -> None:
        """Mark ``cell`` as failed (shown in the table) and remember the full message."""
        cell.problem = "error: " + message.strip().splitlines()[-1][:160]
        self.failures.append(message)

    @contextmanager
    def scratch(self, label: str) -> Iterator[Path]:
        """A fresh folder under the run's root, removed afterwards."""
        path = self.root / f"{label}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def maybe_drop_caches(self) -> None:
        """With ``--drop-caches``: sync and drop the page cache before a load."""
        if self.drop_caches:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")


def progress(message: str) -> None:
    """One line of progress on stderr (the table itself goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


def new_cells(unit: str, peers: list[str], ctx: Context) -> dict[str, Cell]:
    """One empty cell per peer; gokart's is pre-marked when gokart is not importable."""
    cells = {p: Cell(unit) for p in peers}
    if GOKART in cells and not ctx.gokart:
        cells[GOKART].problem = GOKART_MISSING
    return cells


def ratio(cells: dict[str, Cell], peer: str, base: str) -> float | None:
    """median(peer) / median(base), or None when either is missing."""
    a, b = cells[peer].median, cells[base].median
    return None if a is None or b is None or b == 0 else a / b


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def at_most(peer: str, base: str, limit: float, rss: bool = False) -> Check:
    """Check "median(peer) <= limit x median(base)" (time, and RSS too when ``rss``)."""

    def check(cells: dict[str, Cell]) -> str:
        parts = []
        r = ratio(cells, peer, base)
        parts.append(verdict(None if r is None else r <= limit))
        if rss:
            a, b = cells[peer].median_rss, cells[base].median_rss
            ok = None if a is None or b is None else a <= limit * b
            parts.append(f"RSS {verdict(ok)}")
        return ", ".join(parts)

    return check
