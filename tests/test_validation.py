"""Bad inputs are refused with messages that say what is accepted; failures leave no trace."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import linea_luigi as ll

BAD_VERSIONS: list[Any] = [
    "1.9",
    -1,
    "lastest",
    True,
    False,
    1.0,
    "3",
    "0",
    2.5,
    "",
    "LATEST",
    "All",
    [],
    b"1",
    (0,),
]
BAD_NAMES: list[Any] = [
    "",
    "   ",
    None,
    3,
    b"name",
    ["x"],
    "x" * 256,
    "a\nb",
    "a\x00b",
    "\t",
    "bell\x07",
    "del\x7f",
]


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def filled(store: ll.ArtifactStore) -> ll.ArtifactStore:
    store.save("v0", "x")
    store.save("v1", "x")
    return store


# -- versions -----------------------------------------------------------------------------


READERS: dict[str, Callable[[ll.ArtifactStore, Any], Any]] = {
    "get": lambda s, v: s.get("x", v),
    "load": lambda s, v: s.load("x", v),
    "exists": lambda s, v: s.exists("x", v),
    "upstream": lambda s, v: s.upstream("x", v),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_bad_versions_on_read(filled: ll.ArtifactStore, reader: str, version: Any) -> None:
    """LineaPy turned "1.9" into 1; here every non-version is refused, whatever the call."""
    with pytest.raises(ll.InvalidArgumentError) as info:
        READERS[reader](filled, version)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert repr(version) in message  # what was asked
    assert "non-negative int" in message  # what is accepted
    assert "'latest'" in message
    assert "'all'" not in message  # "all" is not accepted here, so not advertised


@pytest.mark.parametrize("version", BAD_VERSIONS, ids=repr)
def test_bad_versions_on_delete(filled: ll.ArtifactStore, version: Any) -> None:
    """delete() also refuses non-versions, lists 'all' as accepted, and deletes nothing."""
    with pytest.raises(ll.InvalidArgumentError) as info:
        filled.delete("x", version)
    message = str(info.value)
    assert "non-negative int" in message
    assert "'latest'" in message
    assert "'all'" in message
    assert [a.version for a in filled.versions("x")] == [0, 1]  # nothing was deleted


@pytest.mark.parametrize("version", BAD_VERSIONS[:6], ids=repr)
def test_bad_versions_on_module_shortcuts(
    filled: ll.ArtifactStore, version: Any, sqlite_url: str, storage_dir: Path
) -> None:
    """The ll.* shortcuts validate exactly like the store methods."""
    ll.options.set("database_url", sqlite_url)
    ll.options.set("artifact_storage_dir", str(storage_dir))
    for call in (ll.get, ll.load, ll.delete):
        with pytest.raises(ll.InvalidArgumentError):
            call("x", version)
    assert ll.get("x").version == 1


@pytest.mark.parametrize("reader", ["get", "load", "exists"])
def test_all_is_only_for_delete(filled: ll.ArtifactStore, reader: str) -> None:
    """Reading one value with "all" makes no sense, so get/load/exists refuse it."""
    with pytest.raises(ll.InvalidArgumentError) as info:
        READERS[reader](filled, "all")
    assert "'all'" in str(info.value)  # says which value was refused


# -- names --------------------------------------------------------------------------------


NAME_CALLS: dict[str, Callable[[ll.ArtifactStore, Any], Any]] = {
    "save": lambda s, n: s.save(1, n),
    "get": lambda s, n: s.get(n),
    "load": lambda s, n: s.load(n),
    "versions": lambda s, n: s.versions(n),
    "latest_version": lambda s, n: s.latest_version(n),
    "delete": lambda s, n: s.delete(n, "all"),
    "exists": lambda s, n: s.exists(n),
}


@pytest.mark.parametrize("call", NAME_CALLS)
@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names(store: ll.ArtifactStore, storage_dir: Path, call: str, name: Any) -> None:
    """Every entry point validates names before touching the database or storage."""
    with pytest.raises(ll.InvalidArgumentError) as info:
        NAME_CALLS[call](store, name)
    assert str(info.value)
    assert store.list() == []
    assert _all_files(storage_dir) == []


def test_long_name_error_says_the_limit(store: ll.ArtifactStore) -> None:
    """The message gives the length and the limit; 255 itself is accepted."""
    with pytest.raises(ll.InvalidArgumentError) as info:
        store.save(1, "n" * 300)
    assert "300" in str(info.value)
    assert "255" in str(info.value)
    assert store.save(1, "n" * 255).version == 0  # the limit itself is fine


def test_upstream_must_hold_artifacts(store: ll.ArtifactStore, storage_dir: Path) -> None:
    """Lineage takes Artifact records only; a bare name is refused before writing."""
    with pytest.raises(ll.InvalidArgumentError):
        store.save(1, "child", upstream=["parent"])  # type: ignore[list-item]
    assert store.latest_version("child") == -1
    assert _all_files(storage_dir) == []


# -- not found ----------------------------------------------------------------------------


def test_missing_name_says_what_exists(filled: ll.ArtifactStore) -> None:
    """The not-found message names the request and where to look."""
    with pytest.raises(ll.ArtifactNotFoundError) as info:
        filled.get("y")
    assert isinstance(info.value, LookupError)
    message = str(info.value)
    assert "'y'" in message
    assert "list()" in message  # where to look


def test_missing_name_suggests_a_close_one(filled: ll.ArtifactStore) -> None:
    """A typo in a name gets a suggestion of the existing one."""
    filled.save(1, "training_data")
    with pytest.raises(ll.ArtifactNotFoundError) as info:
        filled.load("trainig_data")
    assert "'training_data'" in str(info.value)


def test_missing_version_lists_the_versions(filled: ll.ArtifactStore) -> None:
    """A missing version's message lists the versions that do exist."""
    filled.save("v2", "x")
    filled.delete("x", 1)
    with pytest.raises(ll.ArtifactNotFoundError) as info:
        filled.get("x", 1)
    message = str(info.value)
    assert "'x'" in message
    assert "no version 1" in message
    assert "0, 2" in message  # the versions that do exist


def test_empty_store_not_found(store: ll.ArtifactStore) -> None:
    """An empty store answers not-found, not a database error."""
    for call in (lambda: store.get("a"), lambda: store.load("a", 0), lambda: ll.get("a")):
        with pytest.raises(ll.ArtifactNotFoundError):
            call()


# -- unpicklable values -----------------------------------------------------------------------


def _generator() -> Iterator[int]:
    yield 1


UNPICKLABLE: dict[str, Callable[[], object]] = {
    "lock": threading.Lock,
    "generator": _generator,
    "nested-lock": lambda: {"ok": [1, 2, 3], "bad": threading.Lock()},
    # several MB are written before the failure, so a partial temp file exists for a while
    "after-large-prefix": lambda: [b"\x01" * (20 * 2**20), bytearray(2**20), threading.Lock()],
}


@pytest.mark.parametrize("kind", UNPICKLABLE)
def test_unpicklable_value_leaves_nothing(
    store: ll.ArtifactStore, storage_dir: Path, kind: str
) -> None:
    """A failed save leaves no row, no value and no temp file, and takes no version."""
    store.save("existing", "other")
    with pytest.raises(ll.SerializationError) as info:
        store.save(UNPICKLABLE[kind](), "bad")
    assert "cloudpickle" in str(info.value)
    assert store.latest_version("bad") == -1
    assert [a.name for a in store.list()] == ["other"]
    with pytest.raises(ll.ArtifactNotFoundError):
        store.get("bad")
    assert [p.relative_to(storage_dir).parts[0] for p in _all_files(storage_dir)] == ["other"]
    assert not [p for p in storage_dir.rglob("*") if ".tmp-" in p.name]
    assert store.save("fine", "bad").version == 0
    assert store.load("bad") == "fine"
