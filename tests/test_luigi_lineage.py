"""Lineage edges and reruns through real Luigi runs: diamond, fan-in, code-version bumps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi
import pytest
from luigi.task_register import Register
from luigi_support import build, note_run, runs, use_as_default

import linea_luigi as ll


class LnRoot(ll.ArtifactTaskMixin, luigi.Task):
    def run(self) -> None:
        note_run(self)
        self.save(["root"])


class LnLeft(ll.ArtifactTaskMixin, luigi.Task):
    def requires(self) -> Any:
        return LnRoot()

    def run(self) -> None:
        note_run(self)
        self.save([*self.load_input(), "left"])


class LnRight(ll.ArtifactTaskMixin, luigi.Task):
    def requires(self) -> Any:
        return LnRoot()

    def run(self) -> None:
        note_run(self)
        self.save([*self.load_input(), "right"])


class LnJoin(ll.ArtifactTaskMixin, luigi.Task):
    def requires(self) -> Any:
        return {"l": LnLeft(), "r": LnRight()}

    def run(self) -> None:
        note_run(self)
        got = self.load_input()
        self.save(got["l"] + got["r"])


class LnPart(ll.ArtifactTaskMixin, luigi.Task):
    i = luigi.IntParameter()

    def run(self) -> None:
        note_run(self)
        self.save(self.i * 10)


class LnMerge(ll.ArtifactTaskMixin, luigi.Task):
    k = luigi.IntParameter()

    def requires(self) -> Any:
        return [LnPart(i=i) for i in range(self.k)]

    def run(self) -> None:
        note_run(self)
        self.save(sum(self.load_input()))


class LnFit(ll.ArtifactTaskMixin, luigi.Task):
    artifact_outputs = ("model", "metrics")

    def requires(self) -> Any:
        return LnRoot()

    def run(self) -> None:
        self.save({"model": "m", "metrics": "x"})


class LnPlainArtifact(luigi.Task):
    """A plain Luigi task whose output is a name-only ArtifactTarget."""

    def output(self) -> ll.ArtifactTarget:
        return ll.ArtifactTarget("ln-plain")

    def run(self) -> None:
        self.output().save("plain")


class LnReport(ll.ArtifactTaskMixin, luigi.Task):
    def requires(self) -> Any:
        return [LnFit(), LnPlainArtifact()]

    def run(self) -> None:
        self.save(self.load_input())


def edges(arts: list[ll.Artifact]) -> list[tuple[str, int]]:
    return [(a.name, a.version) for a in arts]


@pytest.fixture
def default(
    store: ll.ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ll.ArtifactStore:
    monkeypatch.setenv("LL_TEST_RUNLOG", str(tmp_path / "runs.log"))
    return use_as_default(store)


def test_diamond_edges_are_exact(default: ll.ArtifactStore, tmp_path: Path) -> None:
    assert build([LnJoin()])["completed"] == {"LnRoot", "LnLeft", "LnRight", "LnJoin"}
    assert default.load("LnJoin") == ["root", "left", "root", "right"]
    assert edges(default.upstream("LnJoin", 0)) == [("LnLeft", 0), ("LnRight", 0)]
    assert edges(default.upstream("LnLeft", 0)) == [("LnRoot", 0)]
    assert edges(default.upstream("LnRight", 0)) == [("LnRoot", 0)]
    assert edges(default.upstream("LnRoot", 0)) == []
    assert edges(default.downstream("LnRoot", 0)) == [("LnLeft", 0), ("LnRight", 0)]
    assert edges(default.downstream("LnLeft", 0)) == [("LnJoin", 0)]
    assert edges(default.downstream("LnJoin", 0)) == []
    # the root ran once although two tasks need it; a second run executes nothing
    summary = build([LnJoin()])
    assert not summary["completed"] and summary["already_done"] == {"LnJoin"}
    assert runs(tmp_path / "runs.log") == {"LnRoot": 1, "LnLeft": 1, "LnRight": 1, "LnJoin": 1}


def test_fan_in_records_every_part(default: ll.ArtifactStore, tmp_path: Path) -> None:
    build([LnMerge(k=5)])
    assert default.load("LnMerge") == 100
    ups = default.upstream("LnMerge", 0)
    assert sorted(a.version for a in ups) == [0, 1, 2, 3, 4] and {a.name for a in ups} == {"LnPart"}
    assert {a.identity_key for a in ups} == {LnPart(i=i).artifact_identity_key() for i in range(5)}
    assert {default.load_artifact(a) for a in ups} == {0, 10, 20, 30, 40}
    for a in ups:
        assert edges(default.downstream("LnPart", a.version)) == [("LnMerge", 0)]
    build([LnMerge(k=6)])  # one new part; the other five are reused
    assert runs(tmp_path / "runs.log") == {"LnPart": 6, "LnMerge": 2}
    assert len(default.upstream("LnMerge", 1)) == 6
    assert edges(default.downstream("LnPart", 0)) == [("LnMerge", 0), ("LnMerge", 1)]


def test_code_version_bump_reruns_the_task_and_its_dependants_only(
    default: ll.ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "runs.log"
    build([LnJoin()])
    monkeypatch.setattr(LnLeft, "artifact_code_version", "2")
    Register.clear_instance_cache()  # changed code means new instances (keys are memoised)
    assert build([LnJoin()])["completed"] == {"LnLeft", "LnJoin"}
    assert runs(log) == {"LnRoot": 1, "LnLeft": 2, "LnRight": 1, "LnJoin": 2}
    assert edges(default.upstream("LnJoin", 1)) == [("LnLeft", 1), ("LnRight", 0)]
    assert edges(default.upstream("LnJoin", 0)) == [("LnLeft", 0), ("LnRight", 0)]  # history kept
    assert edges(default.downstream("LnRight", 0)) == [("LnJoin", 0), ("LnJoin", 1)]
    assert default.get("LnLeft", 1).identity_key == LnLeft().artifact_identity_key()

    monkeypatch.setattr(LnRoot, "artifact_code_version", "2")  # a change at the root re-keys all
    Register.clear_instance_cache()
    assert build([LnJoin()])["completed"] == {"LnRoot", "LnLeft", "LnRight", "LnJoin"}
    assert edges(default.upstream("LnJoin", 2)) == [("LnLeft", 2), ("LnRight", 1)]
    assert edges(default.upstream("LnRight", 1)) == [("LnRoot", 1)]

    monkeypatch.setattr(LnLeft, "artifact_code_version", None)
    monkeypatch.setattr(LnRoot, "artifact_code_version", None)
    Register.clear_instance_cache()
    assert not build([LnJoin()])["completed"]  # back to the first identities: all made before
    assert LnJoin().output().get().version == 0
    assert default.latest_version("LnJoin") == 2


def test_lineage_to_multi_output_and_plain_artifact_targets(default: ll.ArtifactStore) -> None:
    build([LnReport()])
    assert default.load("LnReport") == [{"model": "m", "metrics": "x"}, "plain"]
    assert edges(default.upstream("LnReport", 0)) == [
        ("LnFit.metrics", 0),
        ("LnFit.model", 0),
        ("ln-plain", 0),
    ]
    assert edges(default.upstream("LnFit.model", 0)) == [("LnRoot", 0)]


class LnRacedRoot(ll.ArtifactTaskMixin, luigi.Task):
    def run(self) -> None:
        self.save("first")


class LnRacedChild(ll.ArtifactTaskMixin, luigi.Task):
    """Reads its input, then another writer publishes a newer root before it saves."""

    def requires(self) -> Any:
        return LnRacedRoot()

    def run(self) -> None:
        value = self.load_input()
        root = LnRacedRoot()
        root.output().save("second", task=root.artifact_task_info())
        self.save(value + "-child")


def test_lineage_records_the_version_load_input_read(default: ll.ArtifactStore) -> None:
    """Lineage must name what was read, not what is latest when the child saves."""
    build([LnRacedChild()])
    assert default.load("LnRacedChild") == "first-child"
    assert default.latest_version("LnRacedRoot") == 1
    assert edges(default.upstream("LnRacedChild", 0)) == [("LnRacedRoot", 0)]


def test_fan_in_reads_the_latest_version_of_each_input_in_few_queries(
    default: ll.ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import linea_luigi.db.queries.chunks as chunks_module

    build([LnMerge(k=5)])
    # a newer version for one part's identity (as a rerun elsewhere would save)
    part = LnPart(i=3)
    replaced = part.output().get().version
    part.output().save(31, task=part.artifact_task_info())
    monkeypatch.setattr(chunks_module, "PER_QUERY", 2)  # several queries, one name
    asked: list[int] = []
    real = ll.ArtifactStore.latest_by_keys

    def counting(self: ll.ArtifactStore, name: str, keys: Any) -> Any:
        found = real(self, name, keys)
        asked.append(len(found))
        return found

    monkeypatch.setattr(ll.ArtifactStore, "latest_by_keys", counting)
    Register.clear_instance_cache()
    merge = LnMerge(k=5)
    assert merge.load_input() == [0, 10, 20, 31, 40]
    assert asked == [5]
    merge.save(sum(merge.load_input()))
    read = sorted({0, 1, 2, 3, 4, 5} - {replaced})
    assert edges(default.upstream("LnMerge", 1)) == [("LnPart", v) for v in read]
    assert asked == [5, 5]  # the lineage is what load_input read, not read again
