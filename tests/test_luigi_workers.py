"""Forked Luigi workers on SQLite: no lock errors, no duplicated versions, exact lineage.

The parent process checks completeness (touching the database) before Luigi
forks a process per task, which is exactly the case where a shared connection
would corrupt SQLite or PostgreSQL sessions.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from luigi_support import build, child_env, run_python, runs, use_as_default, write_module

import linea_luigi as ll

WORKER_TASKS = """
    import os, time
    import luigi
    import linea_luigi as ll

    def note(task):
        with open(os.environ["LL_TEST_RUNLOG"], "a") as fh:
            fh.write(task.get_task_family() + "\\n")

    class WkLeaf(ll.ArtifactTaskMixin, luigi.Task):
        i = luigi.IntParameter()

        def run(self):
            note(self)
            time.sleep(0.05)
            self.save({"i": self.i, "pid": os.getpid(), "blob": bytes(200_000)})

    class WkMid(ll.ArtifactTaskMixin, luigi.Task):
        g = luigi.IntParameter()

        def requires(self):
            return [WkLeaf(i=self.g * 4 + j) for j in range(4)]

        def run(self):
            note(self)
            self.save(sum(x["i"] for x in self.load_input()))

    class WkSink(ll.ArtifactTaskMixin, luigi.Task):
        groups = luigi.IntParameter(default=3)

        def requires(self):
            return {f"g{g}": WkMid(g=g) for g in range(self.groups)}

        def run(self):
            note(self)
            self.save(self.load_input())
"""

EXPECTED_SINK = {"g0": 6, "g1": 22, "g2": 38}


def check_store(store: ll.ArtifactStore) -> set[int]:
    """Each identity saved exactly once, versions contiguous, lineage exact; returns leaf pids."""
    for name, count in [("WkLeaf", 12), ("WkMid", 3), ("WkSink", 1)]:
        arts = store.versions(name)
        assert [a.version for a in arts] == list(range(count)), name
        assert len({a.identity_key for a in arts}) == count, f"duplicated identity in {name}"
    assert store.load("WkSink") == EXPECTED_SINK
    assert sorted(a.name for a in store.upstream("WkSink", 0)) == ["WkMid"] * 3
    for mid in store.versions("WkMid"):
        leaves = [store.load_artifact(a)["i"] for a in store.upstream("WkMid", mid.version)]
        assert sum(leaves) == store.load_artifact(mid) and len(leaves) == 4
    return {store.load_artifact(a)["pid"] for a in store.versions("WkLeaf")}


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, storage_dir: Path) -> ll.ArtifactStore:
    """The SQLite store, and a store on a fresh PostgreSQL database (see ``pg_url``)."""
    if request.param == "sqlite":
        store: ll.ArtifactStore = request.getfixturevalue("store")
        return store
    return ll.ArtifactStore(request.getfixturevalue("pg_url"), str(storage_dir))


def test_four_forked_workers_in_process(
    any_store: ll.ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = any_store
    write_module(tmp_path, "wk_tasks", WORKER_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("LL_TEST_RUNLOG", str(tmp_path / "runs.log"))
    tasks: Any = importlib.import_module("wk_tasks")
    use_as_default(store)
    assert not tasks.WkSink().complete()  # the parent has used the database before forking

    # parallel scheduling also pickles every task into a pool to check its completeness
    summary = build([tasks.WkSink()], workers=4, parallel_scheduling=True)
    assert summary["completed"] == {"WkLeaf", "WkMid", "WkSink"}
    pids = check_store(store)
    assert os.getpid() not in pids and len(pids) > 1  # really ran in forked processes
    assert runs(tmp_path / "runs.log") == Counter({"WkLeaf": 12, "WkMid": 3, "WkSink": 1})

    again = build([tasks.WkSink()], workers=4)
    assert not again["completed"] and again["already_done"] == {"WkSink"}
    assert len(store.versions("WkLeaf")) == 12


def test_four_workers_from_the_luigi_command_line(
    sqlite_url: str, storage_dir: Path, tmp_path: Path
) -> None:
    write_module(tmp_path, "wk_cli_tasks", WORKER_TASKS)
    log = tmp_path / "runs.log"
    env = child_env(tmp_path, sqlite_url, storage_dir, LL_TEST_RUNLOG=str(log))
    args = [
        "-m",
        "luigi",
        "--module",
        "wk_cli_tasks",
        "WkSink",
        "--local-scheduler",
        "--workers",
        "4",
    ]
    first = run_python(args, env, tmp_path)
    assert "locked" not in first.lower() and "Traceback" not in first
    assert "16 ran successfully" in first, first[-3000:]
    store = ll.ArtifactStore(sqlite_url, str(storage_dir))
    assert len(check_store(store)) > 1

    second = run_python(args, env, tmp_path)
    assert "1 complete ones were encountered" in second, second[-3000:]
    assert runs(log) == Counter({"WkLeaf": 12, "WkMid": 3, "WkSink": 1})
