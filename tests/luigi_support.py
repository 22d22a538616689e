"""Helpers for the Luigi integration tests: real Luigi runs, run logs, child processes.

Every task in these tests appends its task_id to the file named by
``LL_TEST_RUNLOG`` when it runs, which counts executions across forked worker
processes and separate ``python -m luigi`` processes alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import luigi
import sqlalchemy as sa
from luigi.execution_summary import LuigiStatusCode, _summary_dict

import linea_luigi as ll

REPO = Path(__file__).resolve().parents[1]
RUNLOG_ENV = "LL_TEST_RUNLOG"


def note_run(task: Any) -> None:
    """Record that ``task`` ran (one short line, appended atomically)."""
    path = os.environ.get(RUNLOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(task.get_task_family() + "\n")


def runs(path: Path) -> Counter[str]:
    """How often each task family ran, according to the run log."""
    if not path.exists():
        return Counter()
    return Counter(line for line in path.read_text().splitlines() if line)


def use_as_default(store: ll.ArtifactStore) -> ll.ArtifactStore:
    """Make ``store`` the configured default of this process (and of forked workers)."""
    ll.options.set(
        "database_url", store.settings.database_url.render_as_string(hide_password=False)
    )
    ll.options.set("artifact_storage_dir", store.settings.storage_dir)
    return ll.artifact_store()


def build(tasks: list[Any], workers: int = 1, **options: Any) -> dict[str, set[str]]:
    """Run ``tasks`` with the local scheduler; fail unless everything succeeded.

    Returns Luigi's own summary: task families by outcome (``completed`` ran
    now, ``already_done`` was complete before).
    """
    result = luigi.build(
        tasks, local_scheduler=True, detailed_summary=True, workers=workers, **options
    )
    assert result.scheduling_succeeded, result.summary_text
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    summary = _summary_dict(result.worker)
    return {k: {t.get_task_family() for t in v} for k, v in summary.items() if isinstance(v, set)}


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write a task module for child processes (``folder`` goes on their PYTHONPATH)."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def child_env(modules: Path, db_url: str, storage_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a child Python: our package and ``modules`` importable, store set."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(modules), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["LINEA_LUIGI_DATABASE_URL"] = db_url
    env["LINEA_LUIGI_ARTIFACT_STORAGE_DIR"] = str(storage_dir)
    env.update(extra)
    return env


def run_python(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> str:
    """Run ``python <args>``; fail with its output unless it exits 0. Returns stdout+stderr."""
    proc = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{output[-6000:]}"
    return output


def params_column(db_url: str) -> dict[tuple[str, int], Any]:
    """``ll_artifacts.params`` read straight from the database, by (name, version)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, version, params FROM ll_artifacts")).all()
    finally:
        engine.dispose()
    return {
        (r.name, r.version): json.loads(r.params) if isinstance(r.params, str) else r.params
        for r in rows
    }


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Stop a server a test started: terminate, and kill it if it has not exited in 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
