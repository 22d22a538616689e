"""Identity keys: canonical, complete (params, code version, upstream), stable across processes."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import luigi
import pytest
from luigi.parameter import ParameterVisibility
from luigi.task_register import Register
from luigi_support import child_env, run_python, write_module

import linea_luigi as ll
from linea_luigi.integration import identity_key


class IdRaw(luigi.ExternalTask):
    """A plain Luigi task upstream of mixin tasks."""

    day = luigi.Parameter(default="2024-01-01")


class IdData(ll.ArtifactTaskMixin, luigi.Task):
    size = luigi.IntParameter(default=10)
    cfg = luigi.DictParameter(default={})
    cols = luigi.ListParameter(default=[])
    verbose = luigi.BoolParameter(default=False, significant=False)
    token = luigi.Parameter(default="t0", visibility=ParameterVisibility.HIDDEN)
    secret = luigi.Parameter(default="s0", visibility=ParameterVisibility.PRIVATE)

    def requires(self) -> Any:
        return IdRaw()


class IdTrain(ll.ArtifactTaskMixin, luigi.Task):
    artifact_code_version = "1"
    flip = False  # plain class attributes, changed by the tests: not parameters
    raw_day = "2024-02-02"

    def requires(self) -> Any:
        pairs = [("data", IdData()), ("raw", IdRaw(day=self.raw_day))]
        return dict(reversed(pairs) if self.flip else pairs)


class IdSpaced(ll.ArtifactTaskMixin, luigi.Task):
    task_namespace = "space"


class IdCycleA(ll.ArtifactTaskMixin, luigi.Task):
    def requires(self) -> Any:
        return IdCycleB()


class IdCycleB(ll.ArtifactTaskMixin, luigi.Task):
    def requires(self) -> Any:
        return [IdCycleA()]


def key(task: Any) -> str:
    return identity_key(task)


@pytest.fixture(autouse=True)
def fresh_instances() -> None:
    """Luigi caches task instances by parameters; start each test without them."""
    Register.clear_instance_cache()


def sha(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def test_key_is_the_documented_recipe_and_pinned() -> None:
    raw = {
        "v": 1,
        "family": "IdRaw",
        "params": {"day": "2024-01-01"},
        "code_version": None,
        "requires": [],
    }
    data = {
        "v": 1,
        "family": "IdData",
        "params": {"size": "10", "cfg": {}, "cols": []},
        "code_version": None,
        "requires": sha(raw),
    }
    k = IdData().artifact_identity_key()
    assert k == sha(data) == key(IdData())
    # Pinned: a change of the recipe re-keys (and so reruns) every user's pipeline.
    assert k == "c614c031936f99dbc84f5a3dfd04385c17490cf0934a0f83ee2c72cbb4363a76"


def test_key_follows_exactly_what_defines_the_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    base = key(IdData())
    assert key(IdData(size=11)) != base
    assert key(IdData(cols=[1])) != base
    # not part of Luigi's task_id either: insignificant, hidden, private
    assert key(IdData(verbose=True)) == base
    assert key(IdData(token="t1")) == base
    assert key(IdData(secret="s1")) == base
    # a code version is read when an instance is first keyed (keys are memoised per
    # instance); changed code means new instances, here from a cleared instance cache
    monkeypatch.setattr(IdData, "artifact_code_version", "2")
    assert fresh_key(IdData) != base
    monkeypatch.setattr(IdData, "artifact_code_version", None)
    assert fresh_key(IdData) == base


def test_key_is_memoised_per_instance_and_reused_downstream() -> None:
    """Luigi hands out one instance per task id; its key is computed once and reused."""
    Register.clear_instance_cache()
    train_key = key(IdTrain())
    assert IdData().__dict__["_ll_identity_key"] == key(IdData())
    Register.clear_instance_cache()
    IdData().__dict__["_ll_identity_key"] = "0" * 64  # what a downstream key must now read
    assert key(IdTrain()) != train_key
    assert key(IdSpaced()) != key(type("IdSpaced", (ll.ArtifactTaskMixin, luigi.Task), {})())


def test_dict_param_key_order_is_irrelevant_list_order_is_not() -> None:
    a = IdData(cfg={"b": {"y": 1, "x": [1, {"q": 2, "p": 3}]}, "a": 1})
    a_id, a_key = a.task_id, key(a)
    Register.clear_instance_cache()
    b = IdData(cfg={"a": 1, "b": {"x": [1, {"p": 3, "q": 2}], "y": 1}})
    assert b.task_id != a_id  # luigi #2324: Luigi itself tells them apart
    assert key(b) == a_key
    assert key(IdData(cols=[1, 2])) != key(IdData(cols=[2, 1]))


def fresh_key(cls: Any) -> str:
    """The key of a new instance, as after a code change (a new process in real use)."""
    Register.clear_instance_cache()
    return key(cls())


def test_upstream_changes_rekey_downstream(monkeypatch: pytest.MonkeyPatch) -> None:
    base = fresh_key(IdTrain)
    monkeypatch.setattr(IdTrain, "flip", True)
    assert fresh_key(IdTrain) == base  # dict order of requires() does not matter
    monkeypatch.setattr(IdData, "artifact_code_version", "2")
    assert fresh_key(IdTrain) != base  # mixin upstream changed
    monkeypatch.setattr(IdData, "artifact_code_version", None)
    assert fresh_key(IdTrain) == base
    monkeypatch.setattr(IdTrain, "raw_day", "2024-02-03")
    assert fresh_key(IdTrain) != base  # a plain upstream task's parameter changed


def test_bad_definitions_raise_our_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ll.InvalidArgumentError, match="cycle: IdCycleA -> IdCycleB -> IdCycleA"):
        key(IdCycleA())
    monkeypatch.setattr(IdData, "artifact_code_version", 1.5)
    Register.clear_instance_cache()
    with pytest.raises(ll.InvalidArgumentError, match="artifact_code_version must be a str or int"):
        IdData().output()


CHILD_MODULE = """
    import datetime, json
    import luigi
    import linea_luigi as ll

    class Leaf(ll.ArtifactTaskMixin, luigi.Task):
        task_namespace = "stable"
        i = luigi.IntParameter()

    class Top(ll.ArtifactTaskMixin, luigi.Task):
        task_namespace = "stable"
        artifact_code_version = "3"
        cfg = luigi.DictParameter()
        when = luigi.DateParameter()

        def requires(self):
            return {"set": {Leaf(i=i) for i in range(6)}, "list": [Leaf(i=1), Leaf(i=2)]}

    def report(cfg_json):
        cfg = json.loads(cfg_json)  # keeps the key order of the text
        task = Top(cfg=cfg, when=datetime.date(2024, 3, 1))
        return {"key": task.artifact_identity_key(), "task_id": task.task_id}
"""


def test_identity_is_identical_across_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(tmp_path, "stable_tasks", CHILD_MODULE)
    orders = [
        '{"alpha": 1, "beta": {"y": [1, 2], "x": null}}',
        '{"beta": {"x": null, "y": [1, 2]}, "alpha": 1}',
    ]
    env = child_env(tmp_path, "sqlite:///unused.sqlite", tmp_path / "unused")
    code = (
        "import sys, json, stable_tasks as m; print('RESULT=' + json.dumps(m.report(sys.argv[1])))"
    )
    results = []
    for seed, cfg in [("1", orders[0]), ("2", orders[1]), ("3", orders[0])]:
        out = run_python(["-c", code, cfg], {**env, "PYTHONHASHSEED": seed}, tmp_path)
        line = next(x for x in out.splitlines() if x.startswith("RESULT="))
        results.append(json.loads(line.removeprefix("RESULT=")))
    assert results[0]["task_id"] != results[1]["task_id"]  # Luigi's id depends on dict order
    assert {r["key"] for r in results} == {results[0]["key"]}
    monkeypatch.syspath_prepend(str(tmp_path))
    import stable_tasks  # type: ignore[import-not-found]

    assert stable_tasks.report(orders[1])["key"] == results[0]["key"]


def test_pickled_task_leaves_object_memos_behind() -> None:
    """Luigi pickles tasks into worker pools: the upstream graph must not travel along."""
    Register.clear_instance_cache()
    task = IdTrain()
    expected = key(task)
    task.output()
    assert "_ll_requires" in task.__dict__ and "_ll_output" in task.__dict__
    clone = pickle.loads(pickle.dumps(task))
    assert "_ll_requires" not in clone.__dict__ and "_ll_output" not in clone.__dict__
    assert key(clone) == expected  # the key itself is plain data and travels
    assert "_ll_requires" not in IdRaw().__dict__  # plain Luigi tasks are never given the memo
