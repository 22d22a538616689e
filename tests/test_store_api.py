"""The versioned store API, happy paths, run on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from digests import digest_of
from sqlalchemy import func, select

import linea_luigi as ll
from linea_luigi.db.engine import get_engine
from linea_luigi.db.schema import LineageRow
from linea_luigi.settings.urls import parse_db_url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str) -> ll.ArtifactStore:
    """The same store contract on both supported databases.

    The PostgreSQL database runs in a non-UTC time zone, as many servers do, so that
    ``created_at`` must really be converted to UTC rather than be UTC by luck.
    """
    if request.param == "sqlite":
        return ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(tmp_path / "artifacts"))
    url = parse_db_url(request.getfixturevalue("pg_url"))
    engine = get_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f"ALTER DATABASE \"{url.database}\" SET timezone TO 'Asia/Kolkata'")
        conn.commit()
    engine.dispose()  # new sessions pick the zone up
    return ll.ArtifactStore(db_url=url, storage_dir=str(tmp_path / "artifacts"))


def _path(artifact: ll.Artifact) -> Path:
    assert artifact.uri.startswith("file://"), artifact.uri
    return Path(artifact.uri.removeprefix("file://"))


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _storage(store: ll.ArtifactStore) -> Path:
    return Path(store.settings.storage_dir)


def _lineage_rows(store: ll.ArtifactStore) -> int:
    """Edges in the lineage table, read straight from the database."""
    with get_engine(store.settings.database_url).connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(LineageRow)) or 0)


def _closure() -> Callable[[int], int]:
    offset = 41

    def add(x: int) -> int:
        return x + offset

    return add


@dataclasses.dataclass
class Point:
    x: float
    y: float


VALUES: dict[str, Any] = {
    "dict": {"a": 1, "b": [1, 2, {"c": None}], ("t", 1): {1.5, 2.5}},
    "none": None,
    "empty-bytes": b"",
    "bytes-5MB": bytes(range(256)) * (5 * 4096),
    "str": "héllo\nwörld",
    "int-huge": 2**200,
    "float": float("nan"),
    "dataclass": Point(1.0, -2.5),
    "numpy-float": np.linspace(0.0, 1.0, 10_001),
    "numpy-fortran-2d": np.asfortranarray(np.arange(30_000, dtype=np.int32).reshape(100, 300)),
    "numpy-strided-view": np.arange(1000, dtype=np.int64)[::7],
    "numpy-structured": np.array([(1, 2.0), (3, 4.0)], dtype=[("i", "i4"), ("f", "f8")]),
    "numpy-0d": np.array(3.25),
    "numpy-in-dict": {"w": np.ones((64, 64), dtype=np.float32), "b": np.zeros(3)},
}


def _assert_same(expected: Any, actual: Any) -> None:
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray)
        assert actual.dtype == expected.dtype
        assert actual.shape == expected.shape
        np.testing.assert_array_equal(actual, expected)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert actual.keys() == expected.keys()
        for key in expected:
            _assert_same(expected[key], actual[key])
    elif isinstance(expected, float) and expected != expected:
        assert isinstance(actual, float)
        assert actual != actual
    else:
        assert type(actual) is type(expected)
        assert actual == expected


# -- save / load -----------------------------------------------------------------------


def test_values_round_trip(any_store: ll.ArtifactStore) -> None:
    """Every kind of value comes back equal, through all three ways of loading it."""
    for kind, value in VALUES.items():
        artifact = any_store.save(value, kind)
        for loaded in (artifact.load(), any_store.load(kind), any_store.load(kind, version=0)):
            try:
                _assert_same(value, loaded)
            except AssertionError as exc:
                raise AssertionError(f"{kind}: {exc}") from exc


def test_functions_round_trip(any_store: ll.ArtifactStore) -> None:
    """cloudpickle stores lambdas and closures by value, with their captured variables."""
    scale = 3
    any_store.save(lambda x: x * scale, "lambda")
    any_store.save(_closure(), "closure")
    assert any_store.load("lambda")(5) == 15
    assert any_store.load("closure")(1) == 42


def test_first_save_returns_a_full_record(any_store: ll.ArtifactStore) -> None:
    """The returned record is complete and true: time in UTC, size and hash of the real file."""
    before = datetime.now(timezone.utc)
    artifact = any_store.save({"x": 1}, "model")
    after = datetime.now(timezone.utc)
    assert isinstance(artifact, ll.Artifact)
    assert (artifact.name, artifact.version) == ("model", 0)
    assert artifact.created_at.tzinfo is not None
    assert artifact.created_at.utcoffset() == timedelta(0)
    assert before <= artifact.created_at <= after
    assert artifact.task_id is None
    path = _path(artifact)
    assert path.is_file()
    assert path.resolve().is_relative_to(_storage(any_store).resolve())
    assert artifact.size_bytes == path.stat().st_size
    assert artifact.digest == digest_of(path.read_bytes())


def test_get_returns_the_saved_record(any_store: ll.ArtifactStore) -> None:
    """What ``get`` reads back from the database equals what ``save`` returned."""
    saved = any_store.save([1, 2], "nums")
    got = any_store.get("nums", 0)
    assert got == saved
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.load() == [1, 2]


def test_versions_count_up_from_zero(any_store: ll.ArtifactStore) -> None:
    """Each save is a new version with its own value; old versions stay loadable."""
    records = [any_store.save(f"v{i}", "seq") for i in range(4)]
    assert [a.version for a in records] == [0, 1, 2, 3]
    assert len({a.uri for a in records}) == 4  # every version has its own value
    assert [a.created_at for a in records] == sorted(a.created_at for a in records)
    for i in range(4):
        assert any_store.load("seq", i) == f"v{i}"


def test_get_latest(any_store: ll.ArtifactStore) -> None:
    """None and "latest" both mean the highest version; an int means exactly that one."""
    for i in range(3):
        any_store.save(i * 10, "x")
    assert any_store.get("x").version == 2
    for latest in (None, "latest"):
        assert any_store.get("x", latest).version == 2
        assert any_store.load("x", version=latest) == 20
    assert any_store.get("x", 1).load() == 10


def test_numpy_integer_versions_are_accepted(store: ll.ArtifactStore) -> None:
    """Versions computed with numpy (``np.int64``) are ints too."""
    store.save("a", "x")
    store.save("b", "x")
    assert store.get("x", np.int64(1)).load() == "b"


def test_names_are_independent(any_store: ll.ArtifactStore) -> None:
    """Version sequences are per name."""
    any_store.save("a0", "a")
    any_store.save("b0", "b")
    any_store.save("a1", "a")
    assert any_store.get("b").version == 0
    assert any_store.get("a").version == 1
    assert any_store.load("b") == "b0"


def test_unusual_names_round_trip(any_store: ll.ArtifactStore) -> None:
    """Names are data: unicode, separators and a full 255 characters come back unchanged."""
    names = ["données/été", "a b", "x" * 255, "../../up", "UPPER", "upper", "🐍"]
    for i, name in enumerate(names):
        any_store.save(i, name)
    assert sorted(a.name for a in any_store.list()) == sorted(names)
    for i, name in enumerate(names):
        assert any_store.get(name).name == name
        assert any_store.load(name) == i


# -- versions / list / latest_version -----------------------------------------------------


def test_versions_ascending(any_store: ll.ArtifactStore) -> None:
    """versions() lists one name's versions oldest first, and [] for an unknown name."""
    assert any_store.versions("nothing") == []
    for i in range(5):
        any_store.save(i, "x")
    any_store.save("other", "y")
    found = any_store.versions("x")
    assert [a.version for a in found] == [0, 1, 2, 3, 4]
    assert all(a.name == "x" for a in found)
    assert [a.load() for a in found] == [0, 1, 2, 3, 4]


def test_list_returns_latest_of_every_name(any_store: ll.ArtifactStore) -> None:
    """list() gives one record per name, its latest, sorted by name."""
    assert any_store.list() == []
    any_store.save(1, "zeta")
    any_store.save(2, "alpha")
    any_store.save(3, "zeta")
    any_store.save(4, "mid")
    any_store.save(5, "zeta")
    listed = any_store.list()
    assert [(a.name, a.version) for a in listed] == [("alpha", 0), ("mid", 0), ("zeta", 2)]
    assert [a.load() for a in listed] == [2, 4, 5]


def test_latest_version(any_store: ll.ArtifactStore) -> None:
    """-1 means "no version", so callers need no try/except to probe."""
    assert any_store.latest_version("x") == -1
    any_store.save(0, "x")
    assert any_store.latest_version("x") == 0
    any_store.save(0, "x")
    assert any_store.latest_version("x") == 1
    assert any_store.latest_version("y") == -1


# -- delete ------------------------------------------------------------------------------


def test_delete_one_version(any_store: ll.ArtifactStore) -> None:
    """Deleting one version removes its row and its file, and nothing else."""
    saved = [any_store.save(i, "x") for i in range(3)]
    other = any_store.save("keep", "y")
    assert any_store.delete("x", 1) == 1
    assert [a.version for a in any_store.versions("x")] == [0, 2]
    assert not _path(saved[1]).exists()
    assert _path(saved[0]).exists()
    assert _path(saved[2]).exists()
    assert any_store.latest_version("x") == 2
    with pytest.raises(ll.ArtifactNotFoundError):
        any_store.get("x", 1)
    assert any_store.load("x", 0) == 0
    assert other.load() == "keep"


def test_delete_latest(any_store: ll.ArtifactStore) -> None:
    """Deleting "latest" removes only the highest version; the one before becomes latest."""
    saved = [any_store.save(i, "x") for i in range(3)]
    assert any_store.delete("x", "latest") == 1
    assert any_store.latest_version("x") == 1
    assert not _path(saved[2]).exists()
    assert any_store.load("x") == 1


def test_delete_all(any_store: ll.ArtifactStore) -> None:
    """Deleting "all" removes every version and value file of the name, and nothing else."""
    saved = [any_store.save(i, "x") for i in range(4)]
    kept = [any_store.save(i + 10, "y") for i in range(2)]  # y shares no value with x
    assert any_store.delete("x", "all") == 4
    assert any_store.latest_version("x") == -1
    assert any_store.versions("x") == []
    assert [a.name for a in any_store.list()] == ["y"]
    with pytest.raises(ll.ArtifactNotFoundError):
        any_store.get("x")
    for artifact in saved:
        assert not _path(artifact).exists()
    assert _files(_storage(any_store)) == sorted(_path(a) for a in kept)
    assert [a.load() for a in kept] == [10, 11]


def test_delete_nothing_raises(any_store: ll.ArtifactStore) -> None:
    """Deleting what does not exist is an error, not a silent 0."""
    any_store.save(0, "x")
    cases: list[tuple[str, int | str]] = [
        ("missing", 0),
        ("missing", "all"),
        ("missing", "latest"),
        ("x", 5),
    ]
    for name, version in cases:
        with pytest.raises(ll.ArtifactNotFoundError):
            any_store.delete(name, version)
    assert any_store.load("x") == 0


def test_versions_are_never_reused(any_store: ll.ArtifactStore) -> None:
    """Deleted versions stay retired, so a version number always names one value."""
    for i in range(3):
        any_store.save(i, "x")
    any_store.delete("x", "latest")
    assert any_store.save("after latest", "x").version == 3
    any_store.delete("x", "all")
    assert any_store.latest_version("x") == -1
    fresh = any_store.save("after all", "x")
    assert fresh.version == 4
    assert [a.version for a in any_store.versions("x")] == [4]
    assert any_store.get("x").load() == "after all"


# -- lineage -----------------------------------------------------------------------------


def test_lineage_links_exact_versions(any_store: ll.ArtifactStore) -> None:
    """Lineage points at exact versions, both directions."""
    any_store.save("p0", "parent")
    parent = any_store.save("p1", "parent")
    helper = any_store.save("h0", "helper")
    child = any_store.save("c0", "child", upstream=[parent, helper])
    assert [(a.name, a.version) for a in any_store.upstream("child", 0)] == [
        ("helper", 0),
        ("parent", 1),
    ]
    assert any_store.downstream("parent", 1) == [child]
    assert any_store.downstream("parent", 0) == []
    assert any_store.upstream("parent", 1) == []


def test_deleting_a_parent_removes_its_lineage(any_store: ll.ArtifactStore) -> None:
    """No lineage edge may point at a deleted artifact."""
    parent = any_store.save("p", "parent")
    any_store.save("c", "child", upstream=[parent])
    assert _lineage_rows(any_store) == 1
    any_store.delete("parent", 0)
    assert _lineage_rows(any_store) == 0
    assert any_store.upstream("child", 0) == []
    assert any_store.load("child") == "c"


def test_deleting_a_child_removes_its_lineage(any_store: ll.ArtifactStore) -> None:
    """Deleting the children removes their edges to the parent."""
    parent = any_store.save("p", "parent")
    any_store.save("c0", "child", upstream=[parent])
    any_store.save("c1", "child", upstream=[parent])
    assert _lineage_rows(any_store) == 2
    any_store.delete("child", "all")
    assert _lineage_rows(any_store) == 0
    assert any_store.downstream("parent", 0) == []


def test_upstream_deleted_before_save_is_refused(any_store: ll.ArtifactStore) -> None:
    """Lineage must point at a real version: a vanished parent aborts the save cleanly."""
    parent = any_store.save("p", "parent")
    any_store.delete("parent", 0)
    with pytest.raises(ll.ArtifactNotFoundError):
        any_store.save("c", "child", upstream=[parent])
    assert any_store.latest_version("child") == -1
    assert _files(_storage(any_store)) == []
    assert any_store.save("c", "child").version == 0  # the failed save took no number


# -- Luigi fields --------------------------------------------------------------------------


def test_task_fields_are_recorded(any_store: ll.ArtifactStore) -> None:
    """The Luigi fields round-trip and the identity key narrows look-ups."""
    task = ll.TaskInfo(
        family="Train", task_id="Train_lr_0_1_abc", identity_key="k" * 64, params={"lr": 0.1}
    )
    any_store.save("plain", "model")
    saved = any_store.save("from task", "model", task=task)
    got = any_store.get("model")
    assert got == saved
    assert (got.task_family, got.task_id, got.identity_key) == ("Train", task.task_id, "k" * 64)
    assert got.params == {"lr": 0.1}
    assert any_store.get("model", key="k" * 64).version == 1
    assert any_store.exists("model", key="k" * 64)
    assert not any_store.exists("model", key="z" * 64)
    with pytest.raises(ll.ArtifactNotFoundError):
        any_store.get("model", key="z" * 64)


# -- module-level shortcuts on the default store ------------------------------------------


def test_module_shortcuts_use_the_configured_store(tmp_path: Path) -> None:
    """ll.save/get/load/delete act on the configured store, same data as a direct store."""
    db = f"sqlite:///{tmp_path / 'default.sqlite'}"
    ll.options.set("database_url", db)
    ll.options.set("artifact_storage_dir", str(tmp_path / "default"))
    first = ll.save({"k": 1}, "cfg")
    second = ll.save({"k": 2}, "cfg")
    assert (first.version, second.version) == (0, 1)
    assert ll.get("cfg") == second
    assert ll.get("cfg", version=0) == first
    assert ll.load("cfg") == {"k": 2}
    assert ll.load("cfg", 0) == {"k": 1}
    store = ll.artifact_store()
    assert isinstance(store, ll.ArtifactStore)
    assert store.settings.database_url.database == str(tmp_path / "default.sqlite")
    # an independently built store on the same pair sees the same artifacts
    same = ll.ArtifactStore(db_url=db, storage_dir=str(tmp_path / "default"))
    assert same.latest_version("cfg") == 1
    assert ll.delete("cfg", 0) == 1
    assert [a.version for a in same.versions("cfg")] == [1]
    assert ll.delete("cfg", "all") == 1
    with pytest.raises(ll.ArtifactNotFoundError):
        ll.get("cfg")


def test_artifact_is_immutable(store: ll.ArtifactStore) -> None:
    """Records are values: nobody can change a version number after the fact."""
    artifact = store.save(1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        artifact.version = 5  # type: ignore[misc]


def test_repr_is_informative(store: ll.ArtifactStore) -> None:
    """The repr names the database kind and the storage location."""
    text = repr(store)
    assert "ArtifactStore(" in text
    assert _storage(store).name in text
    assert re.search(r"sqlite|postgresql", text)
