"""Value storage: where values land, how they are hashed, big values, picklable stores."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import pytest
from digests import digest_of

import linea_luigi as ll


def _path(artifact: ll.Artifact) -> Path:
    assert artifact.uri.startswith("file://"), artifact.uri
    return Path(artifact.uri.removeprefix("file://"))


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_values_land_under_the_storage_dir(store: ll.ArtifactStore, storage_dir: Path) -> None:
    """Every value is a file under the storage root, at the record's uri."""
    saved = [store.save(i, "x") for i in range(3)] + [store.save("y", "y")]
    assert _files(storage_dir) == sorted(_path(a) for a in saved)
    for artifact in saved:
        assert artifact.uri.startswith(f"file://{storage_dir}/")
        assert _path(artifact).resolve().is_relative_to(storage_dir.resolve())


@pytest.mark.parametrize("name", ["../../escape", "/abs/olute", "a/../../b", "..", ".", "C:\\x"])
def test_names_cannot_escape_the_storage_dir(
    store: ll.ArtifactStore, storage_dir: Path, tmp_path: Path, name: str
) -> None:
    """A name is not a path: whatever it holds, its value stays inside the storage root."""

    def outside() -> set[Path]:
        return {
            p
            for p in tmp_path.rglob("*")
            if p.is_file()
            and not p.is_relative_to(storage_dir)
            and not p.name.startswith("meta.sqlite")
        }

    before = outside()
    artifact = store.save("v", name)
    assert _path(artifact).resolve().is_relative_to(storage_dir.resolve())
    assert outside() == before
    assert store.get(name).name == name
    assert store.load(name) == "v"


def test_names_sharing_a_folder_stay_apart(store: ll.ArtifactStore) -> None:
    """'a/b' and 'a_b' map to the same safe folder; their values must still be distinct."""
    slash = store.save("slash", "a/b")
    underscore = store.save("underscore", "a_b")
    assert slash.uri != underscore.uri
    assert store.load("a/b") == "slash"
    assert store.load("a_b") == "underscore"
    store.delete("a/b", "all")
    assert store.load("a_b") == "underscore"
    assert _path(underscore).exists()


def test_row_checksum_and_size_match_the_file(store: ll.ArtifactStore) -> None:
    """The digest and size are computed while writing; they must equal the bytes on disk."""
    values = [None, b"\x00" * 10, np.arange(3_000_000, dtype=np.int64), {"k": list(range(1000))}]
    for i, value in enumerate(values):
        artifact = store.save(value, f"v{i}")
        data = _path(artifact).read_bytes()
        assert artifact.size_bytes == len(data)
        assert artifact.digest == digest_of(data)
        assert store.get(f"v{i}").digest == artifact.digest


def test_200mb_array_round_trips(store: ll.ArtifactStore, storage_dir: Path) -> None:
    """A large array is written out of band and comes back equal, writable and without temps."""
    array = np.arange(25 * 2**20, dtype=np.float64)  # 200 MiB
    array[::4096] = -1.5
    artifact = store.save(array, "big")
    assert artifact.size_bytes >= array.nbytes
    assert artifact.size_bytes < array.nbytes + 2**20  # no second copy, no text encoding
    loaded = store.load("big")
    assert loaded.dtype == array.dtype
    assert loaded.shape == array.shape
    assert np.array_equal(loaded, array)
    assert loaded.flags.writeable  # an ordinary array the caller may modify
    assert not [p for p in _files(storage_dir) if ".tmp-" in p.name]


def test_no_temp_files_after_successful_saves(store: ll.ArtifactStore, storage_dir: Path) -> None:
    """Successful saves leave only final value files (arrays ``.npy``, the rest ``.pkl``)."""
    for i in range(5):
        store.save(np.full(100_000, i), "a")
        store.save(bytes(i * 1000), f"b{i}")
    files = _files(storage_dir)
    assert len(files) == 10
    assert sorted(p.suffix for p in files) == [".npy"] * 5 + [".pkl"] * 5
    assert not any(".tmp-" in p.name for p in files)


def test_delete_removes_only_the_deleted_values(store: ll.ArtifactStore, storage_dir: Path) -> None:
    """Files of deleted versions go; files of kept versions stay."""
    a = [store.save(i, "a") for i in range(3)]
    b = store.save("b", "b")
    store.delete("a", 1)
    assert _files(storage_dir) == sorted([_path(a[0]), _path(a[2]), _path(b)])
    store.delete("a", "all")
    assert _files(storage_dir) == [_path(b)]


def test_store_is_picklable(store: ll.ArtifactStore) -> None:
    """Luigi ships tasks (and the stores they hold) to workers by pickling them."""
    store.save("by original", "x")
    copy = pickle.loads(pickle.dumps(store))
    assert repr(copy) == repr(store)
    assert copy.load("x") == "by original"
    copy.save("by copy", "x")
    assert store.load("x") == "by copy"
    assert [a.version for a in store.versions("x")] == [0, 1]


def _save_in_child(store: ll.ArtifactStore, name: str) -> int:
    return store.save("from child", name).version


def test_store_used_in_a_spawned_process(store: ll.ArtifactStore) -> None:
    """A store pickled into a fresh interpreter works there and writes where the parent reads."""
    store.save("from parent", "child")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        version = pool.apply(_save_in_child, (store, "child"))
    assert version == 1
    assert store.load("child") == "from child"


def test_store_used_after_fork(store: ll.ArtifactStore) -> None:
    """A forked worker must not reuse its parent's connections: both sides keep working."""
    store.save("before fork", "forked")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        versions = pool.starmap(_save_in_child, [(store, "forked")] * 2)
    assert sorted(versions) == [1, 2]
    assert store.load("forked") == "from child"
    store.save("after fork", "forked")
    assert store.load("forked") == "after fork"


def test_memory_filesystem(sqlite_url: str) -> None:
    """A non-renaming fsspec backend (object-store style commit) works the same way."""
    store = ll.ArtifactStore(db_url=sqlite_url, storage_dir="memory://ll-test-bucket/prefix")
    artifact = store.save({"k": np.arange(5)}, "mem")
    assert artifact.uri.startswith("memory://")
    assert "ll-test-bucket/prefix/" in artifact.uri
    np.testing.assert_array_equal(store.load("mem")["k"], np.arange(5))
    assert store.delete("mem", "all") == 1
    with pytest.raises(ll.ArtifactNotFoundError):
        store.get("mem")


def test_storage_options_reach_fsspec(sqlite_url: str, tmp_path: Path) -> None:
    """storage_options are handed to the filesystem: a bad one fails at construction."""
    store = ll.ArtifactStore(
        db_url=sqlite_url, storage_dir=str(tmp_path / "opts"), storage_options={"auto_mkdir": True}
    )
    assert store.save(1, "x").load() == 1
    with pytest.raises(ll.ConfigError):
        ll.ArtifactStore(db_url=sqlite_url, storage_dir="nosuchproto://bucket/x")
