"""Artifacts joined to the Luigi runs that made them, through the shared database.

Pipelines run in-process with a real ``luigi.scheduler.Scheduler`` recording
into ``ll.DbTaskHistory`` (as ``linea-luigid`` does); the runs are then read
back with ``store.task_runs`` / ``artifact.task_runs`` / ``store.artifacts_of_run``,
also from a separate process with no scheduler at all.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import luigi
import luigi.interface
import luigi.scheduler
import pytest
from luigi_support import child_env, run_python

import linea_luigi as ll


class RData(ll.ArtifactTaskMixin, luigi.Task):
    size = luigi.IntParameter(default=3)

    def run(self) -> None:
        self.save(list(range(self.size)))


class RModel(ll.ArtifactTaskMixin, luigi.Task):
    artifact_outputs = ("model", "metrics")

    def requires(self) -> Any:
        return RData()

    def run(self) -> None:
        rows = self.load_input()
        self.save({"model": sum(rows), "metrics": {"rows": len(rows)}})


class RBroken(ll.ArtifactTaskMixin, luigi.Task):
    def run(self) -> None:
        raise RuntimeError("boom")


class HistoryFactory(luigi.interface._WorkerSchedulerFactory):  # type: ignore[misc]
    """Luigi's in-process scheduler, recording into our history (like linea-luigid)."""

    def create_local_scheduler(self) -> Any:
        return luigi.scheduler.Scheduler(
            prune_on_get_work=True, task_history_impl=ll.DbTaskHistory()
        )


def build(*tasks: luigi.Task) -> bool:
    return bool(
        luigi.build(list(tasks), worker_scheduler_factory=HistoryFactory(), local_scheduler=True)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    luigi_cfg: Callable[[str], Path],
    storage_dir: Path,
) -> ll.ArtifactStore:
    """One database for artifacts and history, configured the documented way."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    luigi_cfg(
        f"[task_history]\ndb_connection = {url}\n"
        f"[artifact_store]\nartifact_storage_dir = {storage_dir}\n"
    )
    return ll.artifact_store()


def test_an_artifact_knows_the_run_that_made_it(shared: ll.ArtifactStore) -> None:
    assert build(RModel())

    [run] = shared.task_runs("RModel.model")
    assert isinstance(run, ll.TaskRun)
    assert (run.family, run.task_id, run.status) == ("RModel", RModel().task_id, "DONE")
    assert run.host
    assert run.scheduled_at and run.started_at and run.finished_at
    assert run.scheduled_at <= run.started_at <= run.finished_at
    assert run.finished_at.tzinfo == timezone.utc
    assert run.failed_at is None
    assert [name for name, _ in run.events] == ["PENDING", "RUNNING", "DONE"]
    assert shared.get("RModel.metrics").task_runs() == [run]

    made = shared.artifacts_of_run(run)
    assert [(a.name, a.version) for a in made] == [("RModel.metrics", 0), ("RModel.model", 0)]
    [data_run] = shared.task_runs("RData")
    assert [(a.name, a.version) for a in shared.artifacts_of_run(data_run)] == [("RData", 0)]


def test_each_run_owns_only_the_versions_it_saved(shared: ll.ArtifactStore) -> None:
    assert build(RModel())
    assert build(RModel())  # complete: the worker only reports DONE, nothing runs
    shared.delete("RModel.model", "all")
    shared.delete("RModel.metrics", "all")
    assert build(RModel())  # runs again: version 1 of both

    first, found_complete, rerun = shared.task_runs("RModel.model")
    assert found_complete.started_at is None and found_complete.status == "DONE"
    assert shared.artifacts_of_run(found_complete) == []
    assert shared.artifacts_of_run(first) == []  # its versions were deleted
    made = shared.artifacts_of_run(rerun)
    assert [(a.name, a.version) for a in made] == [("RModel.metrics", 1), ("RModel.model", 1)]
    assert [r.record_id for r in shared.task_runs("RModel.model", 1)] == [
        first.record_id,
        found_complete.record_id,
        rerun.record_id,
    ]


def test_a_failed_run_is_recorded(shared: ll.ArtifactStore) -> None:
    assert not build(RBroken())
    shared.save("by hand", "RBroken")  # no task_id: not a Luigi output
    assert shared.task_runs("RBroken") == []

    history = ll.DbTaskHistory()
    [record] = history.find_all_by_name("RBroken")
    assert record.events[0].event_name == "FAILED"


def test_runs_are_readable_from_another_process_without_a_scheduler(
    shared: ll.ArtifactStore, tmp_path: Path, storage_dir: Path
) -> None:
    assert build(RModel())
    url = shared.settings.database_url.render_as_string(hide_password=False)
    code = textwrap.dedent(
        f"""
        import json
        import linea_luigi as ll
        store = ll.ArtifactStore({url!r}, {str(storage_dir)!r})
        [run] = store.task_runs("RModel.model")
        made = [(a.name, a.version) for a in store.artifacts_of_run(run)]
        print(json.dumps([run.family, run.status, run.started_at is not None, made]))
        """
    )
    env = child_env(tmp_path, url, storage_dir)
    out = run_python(["-c", code], env, tmp_path)
    assert json.loads(out.strip().splitlines()[-1]) == [
        "RModel",
        "DONE",
        True,
        [["RModel.metrics", 0], ["RModel.model", 0]],
    ]
