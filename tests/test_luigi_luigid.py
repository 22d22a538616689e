"""End to end against a real ``luigid`` central scheduler on a free loopback port."""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from luigi_support import child_env, run_python, runs, write_module
from test_luigid_history import LUIGID, scheduler_process

import linea_luigi as ll

TASKS = """
    import os
    import luigi
    import linea_luigi as ll

    def note(task):
        with open(os.environ["LL_TEST_RUNLOG"], "a") as fh:
            fh.write(task.get_task_family() + "\\n")

    class LdData(ll.ArtifactTaskMixin, luigi.Task):
        part = luigi.IntParameter()

        def run(self):
            note(self)
            self.save([self.part] * 3)

    class LdModel(ll.ArtifactTaskMixin, luigi.Task):
        artifact_outputs = ("model", "metrics")
        parts = luigi.ListParameter(default=[0, 1, 2, 3])

        def requires(self):
            return [LdData(part=p) for p in self.parts]

        def run(self):
            note(self)
            rows = [x for chunk in self.load_input() for x in chunk]
            self.save({"model": sum(rows), "metrics": {"rows": len(rows)}})

    class LdReport(ll.ArtifactTaskMixin, luigi.Task):
        def requires(self):
            return LdModel()

        def run(self):
            note(self)
            self.save(f"model={self.load_input()['model']}")
"""


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[int]:
    """A stock luigid with its own state file and log folder; yields its port."""
    with scheduler_process(LUIGID, tmp_path, dict(os.environ)) as port:
        yield port


def scheduler_tasks(port: int, status: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"data": json.dumps({"status": status})})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list?{query}", timeout=10) as r:
        body: dict[str, Any] = json.loads(r.read())
    return dict(body["response"])


def test_pipeline_against_a_real_luigid(
    luigid: int,
    luigi_cfg: Callable[[str], Path],
    sqlite_url: str,
    storage_dir: Path,
    tmp_path: Path,
) -> None:
    # the store comes from luigi.cfg, which the child finds through LUIGI_CONFIG_PATH
    luigi_cfg(
        f"[artifact_store]\ndb_connection = {sqlite_url}\nartifact_storage_dir = {storage_dir}\n"
    )
    write_module(tmp_path, "ld_tasks", TASKS)
    log = tmp_path / "runs.log"
    env = child_env(tmp_path, sqlite_url, storage_dir, LL_TEST_RUNLOG=str(log))
    for var in ("LINEA_LUIGI_DATABASE_URL", "LINEA_LUIGI_ARTIFACT_STORAGE_DIR"):
        env.pop(var)
    args = [
        "-m",
        "luigi",
        "--module",
        "ld_tasks",
        "LdReport",
        "--scheduler-host",
        "127.0.0.1",
        "--scheduler-port",
        str(luigid),
        "--workers",
        "2",
    ]

    first = run_python(args, env, tmp_path)
    assert "6 ran successfully" in first, first[-3000:]
    done = scheduler_tasks(luigid, "DONE")
    assert sorted(t["name"] for t in done.values()) == ["LdData"] * 4 + ["LdModel", "LdReport"]

    store = ll.ArtifactStore(sqlite_url, str(storage_dir))
    assert store.load("LdReport") == "model=18"
    assert store.load("LdModel.metrics") == {"rows": 12}
    assert [(a.name, a.version) for a in store.upstream("LdReport", 0)] == [
        ("LdModel.metrics", 0),
        ("LdModel.model", 0),
    ]
    assert sorted(store.load_artifact(a)[0] for a in store.upstream("LdModel.model", 0)) == [
        0,
        1,
        2,
        3,
    ]
    assert store.get("LdModel.model").params == {"parts": [0, 1, 2, 3]}

    second = run_python(args, env, tmp_path)
    assert "1 complete ones were encountered" in second, second[-3000:]
    assert runs(log) == Counter({"LdData": 4, "LdModel": 1, "LdReport": 1})
    names = [a.name for a in store.list()]
    assert names == ["LdData", "LdModel.metrics", "LdModel.model", "LdReport"]
    assert [len(store.versions(n)) for n in names] == [4, 1, 1, 1]
