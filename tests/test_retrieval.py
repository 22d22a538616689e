"""Retrieval from Python: readable records, lineage from a record, glob listing, pages, find.

Run on SQLite and PostgreSQL: the glob becomes a regular expression that each
database evaluates itself, and parameter matching must agree on both.
"""

from __future__ import annotations

import fnmatch
from datetime import date

import pytest

import linea_luigi as ll
from linea_luigi.globs import to_regex as glob_to_regex

NAMES = [
    "model",
    "model_b",
    "model%x",
    "Model",
    "features",
    "feat[1]",
    "a.b",
    "a*b",
    "zz top",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest) -> ll.ArtifactStore:
    storage = str(request.getfixturevalue("storage_dir"))
    if request.param == "sqlite":
        url = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("pg_url")
    return ll.ArtifactStore(db_url=url, storage_dir=storage)


def _task(tag: str, /, **params: str) -> ll.TaskInfo:
    return ll.TaskInfo(family="Train", task_id=f"Train_{tag}", identity_key=tag * 8, params=params)


def test_repr_is_short_and_says_what_matters(store: ll.ArtifactStore) -> None:
    a = store.save(b"x" * 3000, "model", task=_task("1", n="1"))
    text = repr(a)
    assert text.startswith("Artifact(name='model', version=0, created='")
    assert "UTC" in text and "size='3.0 KiB'" in text and "task='Train_1'" in text
    assert "digest" not in text and "_store" not in text
    assert "task=" not in repr(store.save(1, "plain"))


def test_upstream_and_downstream_from_a_record(store: ll.ArtifactStore) -> None:
    raw = store.save(1, "raw")
    other = store.save(2, "other")
    feat = store.save(3, "features", upstream=[raw, other])
    model = store.save(4, "model", upstream=[feat])
    assert [(a.name, a.version) for a in feat.upstream()] == [("other", 0), ("raw", 0)]
    assert [a.name for a in raw.downstream()] == ["features"]
    assert [a.name for a in model.upstream()[0].upstream()] == ["other", "raw"]
    assert model.downstream() == []
    orphan = ll.Artifact(**{**feat.__dict__, "_store": None})
    with pytest.raises(ll.ArtifactStoreError, match="no store"):
        orphan.upstream()


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "model*",
        "model?*",
        "model_*",
        "model%*",
        "M*",
        "feat[[]*",
        "a.b",
        "a*b",
        "a[*]b",
        "[!m]*",
        "[a-f]*",
        "*top",
        "zz ?op",
        "nothing*",
        "feat[1",
        "[]x]*",
    ],
)
def test_list_pattern_matches_like_fnmatchcase(any_store: ll.ArtifactStore, pattern: str) -> None:
    for name in NAMES:
        any_store.save(name, name)
    any_store.save("again", "model")
    expected = sorted(n for n in NAMES if fnmatch.fnmatchcase(n, pattern))
    listed = any_store.list(pattern)
    assert [a.name for a in listed] == expected
    assert all(a.version == (1 if a.name == "model" else 0) for a in listed)


def test_glob_translation_escapes_regex_syntax() -> None:
    assert glob_to_regex("a.b*") == r"^a\.b.*$"
    assert glob_to_regex("[!x]?") == "^[^x].$"
    assert glob_to_regex("x[") == r"^x\[$"
    with pytest.raises(ll.InvalidArgumentError):
        glob_to_regex(3)  # type: ignore[arg-type]


def test_list_pages_and_iter_list_walks_every_name(any_store: ll.ArtifactStore) -> None:
    names = [f"n{i:03d}" for i in range(25)]
    for name in names:
        any_store.save(0, name)
        any_store.save(1, name)
    assert [a.name for a in any_store.list(limit=10)] == names[:10]
    assert [a.name for a in any_store.list(limit=10, offset=20)] == names[20:]
    assert [a.name for a in any_store.list("n01*", limit=3, offset=2)] == names[12:15]
    assert [a.name for a in any_store.iter_list(page_size=7)] == names
    assert {a.version for a in any_store.iter_list(page_size=7)} == {1}
    assert [a.name for a in any_store.iter_list("n00*", page_size=5)] == names[:10]
    assert list(any_store.iter_list("none*")) == []
    for bad in ({"limit": -1}, {"offset": -2}, {"limit": True}):
        with pytest.raises(ll.InvalidArgumentError):
            any_store.list(**bad)  # type: ignore[arg-type]
    with pytest.raises(ll.InvalidArgumentError):
        next(any_store.iter_list(page_size=0))


def test_find_compares_serialized_parameters(any_store: ll.ArtifactStore) -> None:
    s = any_store
    s.save(0, "m")  # no task: never found by parameters
    v1 = s.save(1, "m", task=_task("a", n="3", rate="0.5", on="True", day="2024-01-02"))
    v2 = s.save(2, "m", task=_task("b", n="4", rate="0.5", on="False", cfg='{"a": 1, "b": [1, 2]}'))
    v3 = s.save(3, "m", task=_task("c", n="3", tags='["x", "y"]'))
    s.save(4, "other", task=_task("d", n="3"))

    def versions(**params: object) -> list[int]:
        return [a.version for a in s.find("m", **params)]

    assert versions() == [v1.version, v2.version, v3.version]
    assert versions(n=3) == versions(n="3") == [1, 3]
    assert versions(rate=0.5) == [1, 2]
    assert versions(on=True) == [1] and versions(on=False) == [2]
    assert versions(day=date(2024, 1, 2)) == [1]
    assert versions(cfg={"b": [1, 2], "a": 1}) == [2]
    assert versions(cfg={"a": 2, "b": [1, 2]}) == []
    assert versions(tags=["x", "y"]) == [3]
    assert versions(tags=("x", "y")) == [3]
    assert versions(n=3, rate=0.5) == [1]
    assert versions(missing="x") == []
    assert s.find("nobody", n=3) == []
    with pytest.raises(ll.InvalidArgumentError, match="Cannot compare parameter n"):
        s.find("m", n=object())
