"""ArtifactTaskMixin through real Luigi runs: outputs, completeness, shapes, params, stores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import luigi
import pytest
from luigi.parameter import ParameterVisibility
from luigi_support import build, note_run, params_column, runs, use_as_default

import linea_luigi as ll


class MxSource(ll.ArtifactTaskMixin, luigi.Task):
    n = luigi.IntParameter()

    def run(self) -> None:
        note_run(self)
        self.save(list(range(self.n)))


class MxPair(ll.ArtifactTaskMixin, luigi.Task):
    """Two named outputs; ``piecewise`` (insignificant) saves them one call each."""

    artifact_outputs = ("model", "metrics")
    n = luigi.IntParameter(default=3)
    piecewise = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> Any:
        return MxSource(n=self.n)

    def run(self) -> None:
        note_run(self)
        data = self.load_input()
        if self.piecewise:
            self.save(sum(data), "model")
            self.save({"n": len(data)}, "metrics")
        else:
            self.save({"model": sum(data), "metrics": {"n": len(data)}})


class MxPlainFile(luigi.Task):
    """A plain Luigi task with a file output."""

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(os.path.join(os.environ["LL_TEST_DIR"], "plain.txt"))

    def run(self) -> None:
        with self.output().open("w") as fh:
            fh.write("hello")


SHAPES = ["single", "list", "tuple", "dict", "multi", "plain", "none"]


class MxShapes(ll.ArtifactTaskMixin, luigi.Task):
    shape = luigi.ChoiceParameter(choices=SHAPES)

    def requires(self) -> Any:
        return {
            "single": MxSource(n=2),
            "list": [MxSource(n=1), MxSource(n=2)],
            "tuple": (MxSource(n=1), MxSource(n=3)),
            "dict": {"a": MxSource(n=1), "b": MxPair()},
            "multi": MxPair(),
            "plain": MxPlainFile(),
            "none": [],
        }[self.shape]

    def run(self) -> None:
        note_run(self)
        value = self.load_input()
        if isinstance(value, luigi.LocalTarget):
            with value.open() as fh:
                value = ("LocalTarget", fh.read())
        self.save(value)


class MxNamed(ll.ArtifactTaskMixin, luigi.Task):
    artifact_name = "custom-name"

    def run(self) -> None:
        self.save("named")


class MxSpaced(ll.ArtifactTaskMixin, luigi.Task):
    task_namespace = "ns"

    def run(self) -> None:
        self.save("spaced")


class MxSecretive(ll.ArtifactTaskMixin, luigi.Task):
    public = luigi.Parameter()
    cfg = luigi.DictParameter()
    token = luigi.Parameter(visibility=ParameterVisibility.HIDDEN)
    password = luigi.Parameter(visibility=ParameterVisibility.PRIVATE)
    verbose = luigi.Parameter(significant=False)

    def run(self) -> None:
        self.save(len(self.token) + len(self.password))


class MxElsewhere(ll.ArtifactTaskMixin, luigi.Task):
    """Overrides the store with a method (reads its location from the environment)."""

    def artifact_store(self) -> ll.ArtifactStore:
        return ll.ArtifactStore(os.environ["LL_TEST_OTHER_DB"], os.environ["LL_TEST_OTHER_DIR"])

    def requires(self) -> Any:
        return MxSource(n=1)

    def run(self) -> None:
        self.save([*self.load_input(), 1])


class MxAttrStore(ll.ArtifactTaskMixin, luigi.Task):
    """Its store is set as a class attribute by the test."""

    def run(self) -> None:
        self.save("attr")


@pytest.fixture
def default(
    store: ll.ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ll.ArtifactStore:
    monkeypatch.setenv("LL_TEST_RUNLOG", str(tmp_path / "runs.log"))
    monkeypatch.setenv("LL_TEST_DIR", str(tmp_path))
    return use_as_default(store)


def test_single_output_is_saved_with_task_facts_and_runs_once(
    default: ll.ArtifactStore, tmp_path: Path
) -> None:
    task = MxSource(n=3)
    assert not task.complete()
    assert build([task])["completed"] == {"MxSource"}
    art = default.get("MxSource")
    assert (art.version, art.task_family, art.task_id) == (0, "MxSource", task.task_id)
    assert art.identity_key == task.artifact_identity_key() == task.output().key
    assert art.params == {"n": "3"}
    assert task.complete() and task.load_output() == [0, 1, 2]

    summary = build([task])
    assert summary["already_done"] == {"MxSource"} and not summary["completed"]
    assert runs(tmp_path / "runs.log") == {"MxSource": 1}
    # parameter combinations share the name; versions count per name
    build([MxSource(n=4)])
    assert [a.version for a in default.versions("MxSource")] == [0, 1]
    assert default.get("MxSource", 1).identity_key != art.identity_key
    assert task.load_output() == [0, 1, 2] and MxSource(n=4).load_output() == [0, 1, 2, 3]


def test_names_default_to_family_with_namespace_or_artifact_name(default: ll.ArtifactStore) -> None:
    build([MxNamed(), MxSpaced()])
    assert [a.name for a in default.list()] == ["custom-name", "ns.MxSpaced"]
    assert default.load("ns.MxSpaced") == "spaced"
    assert default.get("custom-name").task_family == "MxNamed"


def test_saving_again_adds_versions_and_never_overwrites(default: ll.ArtifactStore) -> None:
    task = MxSource(n=2)
    build([task])
    again = task.save("again")
    assert isinstance(again, ll.Artifact)
    assert (again.version, again.identity_key) == (1, task.artifact_identity_key())
    assert task.load_output() == "again"
    assert default.load("MxSource", 0) == [0, 1]  # the first value is intact
    default.delete("MxSource", "latest")
    assert task.complete()  # v0 still carries the identity
    default.delete("MxSource", "all")
    assert not task.complete()
    build([task])
    assert [a.version for a in default.versions("MxSource")] == [2]  # numbers never reused


def test_several_named_outputs(default: ll.ArtifactStore, tmp_path: Path) -> None:
    task = MxPair()
    outputs = task.output()
    assert isinstance(outputs, dict)
    assert {k: t.name for k, t in outputs.items()} == {
        "model": "MxPair.model",
        "metrics": "MxPair.metrics",
    }
    build([task])
    assert task.load_output() == {"model": 3, "metrics": {"n": 3}}
    model, metrics = default.get("MxPair.model"), default.get("MxPair.metrics")
    assert model.identity_key == metrics.identity_key == task.artifact_identity_key()

    default.delete("MxPair.metrics", "latest")
    assert not task.complete()  # complete only when every output exists
    assert build([MxPair(piecewise=True)])["completed"] == {"MxPair"}
    assert [a.version for a in default.versions("MxPair.model")] == [0, 1]
    assert [a.version for a in default.versions("MxPair.metrics")] == [1]
    assert runs(tmp_path / "runs.log") == {"MxSource": 1, "MxPair": 2}

    for call, match in [
        (lambda: task.save(5), "declares outputs"),
        (lambda: task.save({"modle": 1}), "expected one or more of"),
        (lambda: task.save({}), "expected one or more of"),
        (lambda: task.save(1, "nope"), "no output 'nope'"),
        (lambda: MxSource(n=2).save(1, "model"), "single output"),
    ]:
        with pytest.raises(ll.InvalidArgumentError, match=match):
            call()
    assert default.latest_version("MxPair.model") == 1  # refused saves wrote nothing


def test_load_input_mirrors_the_shape_of_requires(default: ll.ArtifactStore) -> None:
    tasks = {s: MxShapes(shape=s) for s in SHAPES}
    build(list(tasks.values()))
    got = {s: t.load_output() for s, t in tasks.items()}
    assert got == {
        "single": [0, 1],
        "list": [[0], [0, 1]],
        "tuple": [[0], [0, 1, 2]],
        "dict": {"a": [0], "b": {"model": 3, "metrics": {"n": 3}}},
        "multi": {"model": 3, "metrics": {"n": 3}},
        "plain": ("LocalTarget", "hello"),
        "none": [],
    }


def test_only_public_significant_params_reach_the_database(
    default: ll.ArtifactStore, sqlite_url: str, tmp_path: Path
) -> None:
    task = MxSecretive(
        public="visible",
        cfg={"b": 2, "a": 1},
        token="HIDDEN-TOKEN-1",
        password="PRIVATE-PASS-2",
        verbose="INSIGNIFICANT-3",
    )
    build([task])
    # the params column, then every byte of the database files (WAL included)
    assert params_column(sqlite_url) == {
        ("MxSecretive", 0): {"public": "visible", "cfg": {"a": 1, "b": 2}}
    }
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("meta.sqlite*"))
    assert b"visible" in raw
    for secret in (b"HIDDEN-TOKEN-1", b"PRIVATE-PASS-2", b"INSIGNIFICANT-3"):
        assert secret not in raw


def test_store_can_be_chosen_per_task(
    default: ll.ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_db, other_dir = f"sqlite:///{tmp_path / 'other.sqlite'}", tmp_path / "other"
    monkeypatch.setenv("LL_TEST_OTHER_DB", other_db)
    monkeypatch.setenv("LL_TEST_OTHER_DIR", str(other_dir))
    other = ll.ArtifactStore(other_db, str(other_dir))
    third = ll.ArtifactStore(f"sqlite:///{tmp_path / 'third.sqlite'}", str(tmp_path / "third"))
    monkeypatch.setattr(MxAttrStore, "artifact_store", third, raising=False)
    build([MxElsewhere(), MxAttrStore()])
    assert [a.name for a in default.list()] == ["MxSource"]
    assert other.load("MxElsewhere") == [0, 1]
    assert other.upstream("MxElsewhere") == []  # lineage never points into another database
    assert third.load("MxAttrStore") == "attr"


def test_misuse_raises_our_errors(
    default: ll.ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ll.ArtifactNotFoundError):
        MxSource(n=9).load_output()

    class NotATask(ll.ArtifactTaskMixin):
        pass

    with pytest.raises(ll.InvalidArgumentError, match=r"\(ll.ArtifactTaskMixin, luigi.Task\)"):
        NotATask().output()
    with pytest.raises(ll.InvalidArgumentError, match=r"lists luigi\.Task before"):

        class WrongOrder(luigi.Task, ll.ArtifactTaskMixin):
            pass

    monkeypatch.setattr(MxPair, "artifact_outputs", ("a", "a"))
    with pytest.raises(ll.InvalidArgumentError, match="duplicate"):
        MxPair().output()
    monkeypatch.setattr(MxPair, "artifact_outputs", "model")
    with pytest.raises(ll.InvalidArgumentError, match="tuple of non-empty names"):
        MxPair().output()
    monkeypatch.setattr(MxAttrStore, "artifact_store", "sqlite:///x.db", raising=False)
    with pytest.raises(ll.InvalidArgumentError, match=r"must be an ll\.ArtifactStore"):
        MxAttrStore().complete()


class MxParamsBase(luigi.Task):
    a = luigi.IntParameter(default=1)


class MxParams(ll.ArtifactTaskMixin, MxParamsBase):
    b = luigi.Parameter(default="x")
    c = b  # one parameter under two names: Luigi orders them by name


def _luigi_get_params(cls: type) -> list[tuple[str, Any]]:
    luigi_own: Any = luigi.Task.get_params
    return list(luigi_own.__func__(cls))


def test_get_params_is_luigis_list_and_follows_changes_to_the_classes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MxParams.get_params() == _luigi_get_params(MxParams)
    assert [n for n, _ in MxParams.get_params()] == ["a", "b", "c"]
    first = MxParams.get_params()
    first.clear()  # callers get their own list
    assert MxParams.get_params() == _luigi_get_params(MxParams)

    # added later (luigi.util.inherits does this), on the class or on a base
    monkeypatch.setattr(MxParams, "d", luigi.Parameter(default="d"), raising=False)
    monkeypatch.setattr(MxParamsBase, "e", luigi.Parameter(default="e"), raising=False)
    assert MxParams.get_params() == _luigi_get_params(MxParams)
    assert {n for n, _ in MxParams.get_params()} == {"a", "b", "c", "d", "e"}
    # replaced (a monkeypatched default), and shadowed by a non-parameter
    replaced = luigi.IntParameter(default=2)
    monkeypatch.setattr(MxParamsBase, "a", replaced)
    assert dict(MxParams.get_params())["a"] is replaced
    monkeypatch.setattr(MxParams, "b", "not a parameter")
    assert MxParams.get_params() == _luigi_get_params(MxParams)
    monkeypatch.undo()
    assert MxParams.get_params() == _luigi_get_params(MxParams)
    assert [n for n, _ in MxParams.get_params()] == ["a", "b", "c"]
