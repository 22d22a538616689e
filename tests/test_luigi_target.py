"""ArtifactTarget: a real luigi.Target, one indexed query per exists(), picklable, lazy."""

from __future__ import annotations

import os
import pickle
import pickletools
import shutil
from pathlib import Path
from typing import Any

import luigi
import pytest
from luigi_support import build, note_run, use_as_default

import linea_luigi as ll
from linea_luigi.db import executor as fast
from linea_luigi.db.engine import get_engine

KEY = "a" * 64


def info(key: str = KEY) -> ll.TaskInfo:
    return ll.TaskInfo(family="Fam", task_id="Fam_x_123", identity_key=key, params={"p": "1"})


def test_exists_selects_by_name_version_and_key(store: ll.ArtifactStore) -> None:
    any_version = ll.ArtifactTarget("model", store=store)
    assert isinstance(any_version, luigi.Target)
    assert not any_version.exists()
    store.save("plain", "model")
    store.save("keyed", "model", task=info())
    assert any_version.exists()
    assert ll.ArtifactTarget("model", version=1, store=store).exists()
    assert not ll.ArtifactTarget("model", version=2, store=store).exists()
    assert ll.ArtifactTarget("model", key=KEY, store=store).get().version == 1
    assert not ll.ArtifactTarget("model", key="b" * 64, store=store).exists()
    assert not ll.ArtifactTarget("other", key=KEY, store=store).exists()
    assert ll.ArtifactTarget("model", version=0, key=KEY, store=store).exists() is False


def test_exists_is_one_indexed_query_without_storage(store: ll.ArtifactStore) -> None:
    saved = store.save([1, 2, 3], "model", task=info())
    target = ll.ArtifactTarget("model", key=KEY, store=store)
    assert target.exists()  # warm-up: schema check done, engine created
    statements: list[str] = []

    def record(statement: str) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")):
            statements.append(statement)

    engine = get_engine(store.settings.database_url)
    # exists() runs on this thread's held DBAPI connection: trace it at the driver
    held = fast.held_connection(engine)
    held.set_trace_callback(record)
    try:
        # the value is gone from storage: exists() must not notice (no storage round trip)
        shutil.rmtree(Path(store.settings.storage_dir) / "model")
        assert target.exists()
    finally:
        held.set_trace_callback(None)
    assert len(statements) == 1, statements
    assert "ll_artifacts" in statements[0]
    with engine.connect() as conn:
        plan = " | ".join(
            str(row[-1])
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statements[0],
                ("model", KEY, 1, 0)[: statements[0].count("?")],
            )
        )
    assert "USING COVERING INDEX" in plan and "SCAN" not in plan, plan
    with pytest.raises(ll.StorageError):
        saved.load()


def test_load_get_and_save_through_targets(store: ll.ArtifactStore) -> None:
    target = ll.ArtifactTarget("numbers", store=store)
    first = target.save([1, 2])
    second = target.save([3])
    assert (first.version, second.version) == (0, 1)
    assert target.get() == second
    assert target.load() == [3]
    assert ll.ArtifactTarget("numbers", version=0, store=store).load() == [1, 2]

    with pytest.raises(ll.InvalidArgumentError, match="read-only"):
        ll.ArtifactTarget("numbers", version=0, store=store).save("x")
    keyed = ll.ArtifactTarget("numbers", key=KEY, store=store)
    with pytest.raises(ll.InvalidArgumentError, match=r"task=ll\.TaskInfo"):
        keyed.save("x")
    with pytest.raises(ll.InvalidArgumentError, match="identity key"):
        keyed.save("x", task=info("c" * 64))
    assert store.latest_version("numbers") == 1  # refused saves wrote nothing
    made = keyed.save("x", task=info(), upstream=[first])
    assert (made.version, made.identity_key, made.task_id) == (2, KEY, "Fam_x_123")
    assert keyed.load() == "x"
    assert store.upstream("numbers", 2) == [first]
    with pytest.raises(ll.ArtifactNotFoundError, match="identity key"):
        ll.ArtifactTarget("numbers", key="d" * 64, store=store).load()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "empty"),
        ({"name": 3}, "strings"),
        ({"name": "x", "version": "1.9"}, "Invalid version"),
        ({"name": "x", "version": -1}, "Invalid version"),
        ({"name": "x", "key": 5}, "key must be"),
        ({"name": "x", "store": "sqlite:///x.db"}, "store must be"),
    ],
)
def test_bad_arguments_are_refused_early(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ll.InvalidArgumentError, match=match):
        ll.ArtifactTarget(**kwargs)


def test_default_store_is_resolved_at_use_not_at_creation(
    store: ll.ArtifactStore, tmp_path: Path
) -> None:
    target = ll.ArtifactTarget("late")  # built before any configuration
    use_as_default(store)
    target.save("v")
    assert store.load("late") == "v"
    other = ll.ArtifactStore(f"sqlite:///{tmp_path / 'other.sqlite'}", str(tmp_path / "other"))
    use_as_default(other)
    assert not target.exists()  # now looks in the other store


def _pickled_globals(obj: Any) -> set[str]:
    """Module names of every class/function a pickle would import."""
    found: set[str] = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(pickle.dumps(obj)):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(str(arg))
        elif op.name == "STACK_GLOBAL":
            found.add(strings[-2])
        elif op.name == "GLOBAL":
            found.add(str(arg).split(" ")[0])
    return found


def test_targets_pickle_without_engines_and_work_after_fork(store: ll.ArtifactStore) -> None:
    target = ll.ArtifactTarget("forked", key=KEY, store=store)
    target.save(1, task=info())
    assert target.exists()  # the parent now holds a pooled connection
    modules = _pickled_globals(target)
    forbidden = ("sqlite3", "sqlalchemy.engine.base", "sqlalchemy.pool", "fsspec", "psycopg2")
    assert not [m for m in modules if m.startswith(forbidden)], modules
    clone = pickle.loads(pickle.dumps(target))
    assert clone.get() == target.get()

    pid = os.fork()
    if pid == 0:  # child: its own engine; the parent's connection must stay untouched
        code = 1
        try:
            clone.save(2, task=info())
            code = 0 if clone.load() == 2 and clone.get().version == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert target.load() == 2 and [a.version for a in store.versions("forked")] == [0, 1]


class PlainProducer(luigi.Task):
    """A plain Luigi task whose output is an ArtifactTarget (no mixin)."""

    n = luigi.IntParameter()

    def output(self) -> ll.ArtifactTarget:
        return ll.ArtifactTarget(f"plain-{self.n}")

    def run(self) -> None:
        note_run(self)
        self.output().save(list(range(self.n)))


def test_plain_task_with_artifact_target_runs_once(
    store: ll.ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_as_default(store)
    monkeypatch.setenv("LL_TEST_RUNLOG", str(tmp_path / "runs.log"))
    assert build([PlainProducer(n=3)])["completed"] == {"PlainProducer"}
    assert build([PlainProducer(n=3)])["already_done"] == {"PlainProducer"}
    assert store.load("plain-3") == [0, 1, 2]
    assert (tmp_path / "runs.log").read_text().splitlines() == ["PlainProducer"]
