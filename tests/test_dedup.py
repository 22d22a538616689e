"""Identical values stored once: one object per value, removed when no row references it.

SQLite and PostgreSQL, local folders and S3 (moto on loopback). The objects in
storage are counted and measured straight from the folder or the bucket, not
through the store. The race between a save that reuses an object and a delete
or gc removing its last other row runs as many rounds of two threads, and
both orders are forced with real locks held open in another connection.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from fault_support import UP, TcpProxy, s3_client, wait_until

import linea_luigi as ll
from linea_luigi.db.schema import ARTIFACTS

Files = Callable[[], dict[str, int]]  # location -> size, read from storage itself


def _local_files(root: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for parent, _, names in os.walk(root):
        for n in names:
            path = Path(parent, n)
            found[path.relative_to(root).as_posix()] = path.stat().st_size
    return found


def _s3_files(client: Any, bucket: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="runs/"):
        found.update({o["Key"][len("runs/") :]: o["Size"] for o in page.get("Contents", [])})
    return found


def _db(request: pytest.FixtureRequest, which: str) -> str:
    return str(request.getfixturevalue("sqlite_url" if which == "sqlite" else "pg_url"))


def _open(
    request: pytest.FixtureRequest, url: str, where: str, storage_dir: Path
) -> tuple[ll.ArtifactStore, Files]:
    """A store on ``url`` with its values in ``storage_dir`` or (``s3``) a fresh bucket."""
    if where == "local":
        return ll.ArtifactStore(url, str(storage_dir)), lambda: _local_files(storage_dir)
    endpoint, bucket = request.getfixturevalue("endpoint"), request.getfixturevalue("bucket")
    client = s3_client(endpoint)
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    store = ll.ArtifactStore(url, f"s3://{bucket}/runs", storage_options=options)
    return store, lambda: _s3_files(client, bucket)


@pytest.fixture(params=["sqlite+local", "postgresql+local", "sqlite+s3", "postgresql+s3"])
def backend(request: pytest.FixtureRequest, storage_dir: Path) -> tuple[ll.ArtifactStore, Files]:
    db, where = request.param.split("+")
    return _open(request, _db(request, db), where, storage_dir)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return _db(request, request.param)


def _rows(store: ll.ArtifactStore) -> list[ll.Artifact]:
    return [v for a in store.list() for v in store.versions(a.name)]


def _assert_consistent(store: ll.ArtifactStore, files: Files) -> None:
    """Storage holds exactly the objects rows reference, and every row loads (digest checked)."""
    rows = _rows(store)
    assert set(files()) == {a.location for a in rows}
    for a in rows:
        store.load_artifact(a)


def _array(seed: int, n: int = 50_000) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.random.default_rng(seed).random(n)


def test_ten_saves_store_one_object(backend: tuple[ll.ArtifactStore, Files]) -> None:
    """Ten names, one value: one object, no byte added; it goes with the last row."""
    store, files = backend
    value = _array(1, 500_000)  # 4 MB
    first = store.save(value, "n0")
    before = files()
    assert list(before) == [first.location] and before[first.location] == first.size_bytes
    saved = [first] + [store.save(value, f"n{i}") for i in range(1, 10)]
    assert files() == before  # one object, and storage grew by nothing
    assert {a.location for a in saved} == {first.location}
    assert {a.uri for a in saved} == {first.uri}
    assert [a.version for a in saved] == [0] * 10
    for i in range(9):
        assert store.delete(f"n{i}", 0) == 1
        assert files() == before
        assert np.array_equal(store.load("n9"), value)
    assert store.delete("n9", 0) == 1
    assert files() == {}


def test_the_new_row_is_as_before(store: ll.ArtifactStore, storage_dir: Path) -> None:
    """Version, lineage, task facts, type, libraries, time and aliases are the row's own."""
    value = {"rows": list(range(1000))}
    a = store.save(value, "a")
    parent = store.save("input", "p")
    task = ll.TaskInfo("Fam", "Fam(x=1)", "k" * 64, {"x": "1"})
    store.save("older", "b")
    b = store.save(value, "b", task=task, upstream=[parent])
    again = store.save(value, "a")  # a second version of one name, same value
    assert (b.version, again.version) == (1, 1)
    assert b.location == again.location == a.location and b.uri == a.uri
    assert (b.digest, b.size_bytes, b.serializer) == (a.digest, a.size_bytes, a.serializer)
    assert (b.task_family, b.task_id, b.identity_key, b.params) == (
        "Fam",
        "Fam(x=1)",
        "k" * 64,
        {"x": "1"},
    )
    assert (a.task_family, again.task_family) == (None, None)
    assert b.value_type == a.value_type == "builtins.dict" and b.libraries == a.libraries
    assert a.created_at < b.created_at < again.created_at
    assert [x.name for x in store.upstream("b")] == ["p"] and store.upstream("a") == []
    assert [(x.name, x.version) for x in store.downstream("p")] == [("b", 1)]
    store.set_alias("b", 1, "best")
    assert store.get("b@best") == store.get("b", 1) == b
    assert store.get("b", key="k" * 64) == b
    assert store.load("b@best") == value
    assert len(_local_files(storage_dir)) == 3  # value, "input", "older"


def test_delete_all_keeps_what_another_name_shares(
    store: ll.ArtifactStore, storage_dir: Path
) -> None:
    """Deleting "all" of a name frees its own objects, not the one another name references."""
    files = lambda: _local_files(storage_dir)  # noqa: E731
    v0, w, v2 = store.save("V", "a"), store.save("W", "a"), store.save("V", "a")
    assert v0.location == v2.location != w.location
    b = store.save("W", "b")
    assert b.location == w.location
    assert store.delete("a", "all") == 3
    assert set(files()) == {w.location}
    assert store.load("b") == "W"
    _assert_consistent(store, files)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_gc_never_removes_a_shared_object(
    request: pytest.FixtureRequest, db: str, storage_dir: Path
) -> None:
    """Retention deletes versions sharing an object that b keeps; the orphan scan (grace 0)
    keeps it too, though it sits in a's folder; it goes with its last row."""
    store = ll.ArtifactStore(_db(request, db), str(storage_dir))
    files = lambda: _local_files(storage_dir)  # noqa: E731
    value = _array(2)
    for v in (value, "W", value, "X"):  # a v0..v3: v0 and v2 share one object
        store.save(v, "a")
    shared = store.save(value, "b").location
    w = store.get("a", 1).location
    assert len(files()) == 3
    planned = store.gc(keep_last=1)  # dry run: what it says it frees, it frees
    size_w = files()[w]
    assert planned.shared == {shared} and planned.size_bytes == size_w
    done = store.gc(keep_last=1, dry_run=False)
    assert [(a.name, a.version) for a in done.versions] == [("a", 0), ("a", 1), ("a", 2)]
    assert done.shared == {shared} and done.size_bytes == size_w  # only W's object went
    assert shared in files() and w not in files()
    assert np.array_equal(store.load("b"), value)
    swept = store.gc(grace="0s", dry_run=False)  # the orphan scan: a referenced object is live
    assert swept.versions == [] and swept.orphans == [] and swept.young_orphans == []
    assert shared in files()
    _assert_consistent(store, files)
    store.delete("b", 0)
    assert shared not in files()
    _assert_consistent(store, files)


def test_the_lookup_needs_the_same_serializer_and_size(db_url: str, storage_dir: Path) -> None:
    """Same digest under another serializer (or size) is another value: stored again."""
    store = ll.ArtifactStore(db_url, str(storage_dir))
    a = store.save(b"same bytes", "a")
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # as if another serializer had written these very bytes
        conn.execute(sa.update(ARTIFACTS).values(serializer="npy"))
    b = store.save(b"same bytes", "b")
    with engine.begin() as conn:
        conn.execute(sa.update(ARTIFACTS).where(ARTIFACTS.c.name == "b").values(size_bytes=1))
    c = store.save(b"same bytes", "c")
    engine.dispose()
    assert len({a.location, b.location, c.location}) == 3
    assert len(_local_files(storage_dir)) == 3
    d = store.save(b"same bytes", "d")
    assert d.location == c.location  # the lookup does find a true match


# -- the race: a save reusing an object against a delete or gc of its last other row --------

ROUNDS = 30


def _remove(store: ll.ArtifactStore, deleter: str, name: str) -> None:
    if deleter == "delete":
        assert store.delete(name, 0) == 1
    else:
        done = store.gc(keep_last=1, dry_run=False)
        assert [(a.name, a.version) for a in done.versions] == [(name, 0)]


@pytest.mark.parametrize("deleter", ["delete", "gc"])
def test_save_races_removal_of_the_last_other_row(
    db_url: str, storage_dir: Path, deleter: str
) -> None:
    """Many rounds, both threads released at once: the saved row always has its object."""
    store = ll.ArtifactStore(db_url, str(storage_dir))
    files = lambda: _local_files(storage_dir)  # noqa: E731
    rng = random.Random(16)
    outcomes = {"reused": 0, "own copy": 0}
    for i in range(ROUNDS):
        value = _array(100 + i, 20_000)
        base = store.save(value, f"a{i}")
        if deleter == "gc":
            store.save(f"newer {i}", f"a{i}")  # v0 is now beyond keep_last=1
        saved = _race(store, value, deleter, i, rng.uniform(-0.003, 0.003))
        reused = saved.location == base.location
        outcomes["reused" if reused else "own copy"] += 1
        assert saved.location in files()
        assert (base.location in files()) == reused
        assert np.array_equal(store.load(f"b{i}"), value)
        _assert_consistent(store, files)
    assert min(outcomes.values()) > 0, outcomes  # both orders happened


def _race(store: ll.ArtifactStore, value: Any, deleter: str, i: int, pause: float) -> Any:
    """Save ``value`` as b{i} while a{i} v0 is removed, both released by one barrier.

    ``pause``: seconds the removal starts after the save (before it, if negative).
    """
    gate = threading.Barrier(2)

    def save() -> ll.Artifact:
        gate.wait()
        time.sleep(max(0.0, -pause))
        return store.save(value, f"b{i}")

    def remove() -> None:
        gate.wait()
        time.sleep(max(0.0, pause))
        _remove(store, deleter, f"a{i}")

    saving, removing = _Thread(save), _Thread(remove)
    removing.result()
    return saving.result()


class _Thread(threading.Thread):
    """Runs ``work`` and keeps its result or error for ``result``."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._work, self._out, self._err = work, None, None
        self.start()

    def run(self) -> None:
        try:
            self._out = self._work()
        except BaseException as exc:  # handed to the test by result()
            self._err = exc  # type: ignore[assignment]

    def result(self) -> Any:
        self.join(60)
        assert not self.is_alive()
        if self._err is not None:
            raise self._err
        return self._out


@pytest.fixture
def pg(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def _waiting(pg: sa.Engine) -> int:
    """Backends of this database waiting for a row lock."""
    with pg.connect() as conn:
        q = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return int(conn.exec_driver_sql(q).scalar_one())


#: 8 MiB: on S3 a save of an array this size knows its digest before uploading (``prehash``)
BIG = 1 << 20


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("deleter", ["delete", "gc"])
def test_postgres_save_locks_first(
    request: pytest.FixtureRequest,
    pg_url: str,
    pg: sa.Engine,
    storage_dir: Path,
    deleter: str,
    where: str,
) -> None:
    """The save holds its FOR SHARE lock; the deleter waits, then sees the new reference."""
    store, files = _open(request, pg_url, where, storage_dir)
    value = _array(3, BIG)
    base = store.save(value, "a")
    if deleter == "gc":
        store.save("newer", "a")
    parent = store.save("input", "p")
    with pg.connect() as holder:  # pauses the save after its lookup: its lineage insert waits
        holder.exec_driver_sql("SELECT id FROM ll_artifacts WHERE name = 'p' FOR UPDATE")
        saving = _Thread(lambda: store.save(value, "b", upstream=[parent]))
        wait_until(lambda: _waiting(pg) == 1, "the save to wait at its lineage insert")
        removing = _Thread(lambda: _remove(store, deleter, "a"))
        wait_until(lambda: _waiting(pg) == 2, "the deleter to wait for the save's lock")
        time.sleep(0.2)
        assert removing.is_alive()  # it cannot pass the save's lock
        holder.rollback()
    saved, _ = saving.result(), removing.result()
    assert saved.location == base.location
    assert base.location in files()
    assert np.array_equal(store.load("b"), value)
    _assert_consistent(store, files)


@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("deleter", ["delete", "gc"])
def test_postgres_deleter_locks_first(
    request: pytest.FixtureRequest,
    pg_url: str,
    pg: sa.Engine,
    storage_dir: Path,
    deleter: str,
    where: str,
) -> None:
    """The deleter holds its FOR UPDATE lock; the save waits, finds no row, stores its value.

    On S3 the save knew the digest first and had written nothing: it writes the value now.
    """
    store, files = _open(request, pg_url, where, storage_dir)
    value = _array(4, BIG)
    parent = store.save("input", "p")
    base = store.save(value, "a", upstream=[parent])
    if deleter == "gc":
        store.save("newer", "a")
    with pg.connect() as holder:  # pauses the deleter after its lock: its lineage delete waits
        holder.exec_driver_sql(
            "SELECT * FROM ll_lineage WHERE child_id = (SELECT id FROM ll_artifacts "
            "WHERE name = 'a' AND version = 0) FOR UPDATE"
        )
        removing = _Thread(lambda: _remove(store, deleter, "a"))
        wait_until(lambda: _waiting(pg) == 1, "the deleter to wait at its lineage delete")
        saving = _Thread(lambda: store.save(value, "b"))
        wait_until(lambda: _waiting(pg) == 2, "the save's lookup to wait for the deleter")
        holder.rollback()
    removing.result()
    saved = saving.result()
    assert saved.location != base.location and base.location not in files()
    assert saved.location in files()
    assert np.array_equal(store.load("b"), value)
    _assert_consistent(store, files)


def _sqlite_file(url: str) -> str:
    return str(sa.make_url(url).database)


def test_sqlite_delete_holding_the_write_lock(sqlite_url: str, storage_dir: Path) -> None:
    """A delete that began first (BEGIN IMMEDIATE) is seen whole by the save's lookup."""
    store = ll.ArtifactStore(sqlite_url, str(storage_dir))
    value = _array(5)
    base = store.save(value, "a")
    holder = sqlite3.connect(_sqlite_file(sqlite_url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM ll_artifacts WHERE name = 'a'")
    saving = _Thread(lambda: store.save(value, "b"))
    time.sleep(0.5)
    assert saving.is_alive()  # waiting for the write lock: its lookup has not run
    holder.execute("COMMIT")
    os.remove(storage_dir / base.location)  # the deleter's second half: no row references it
    holder.close()
    saved = saving.result()
    files = lambda: _local_files(storage_dir)  # noqa: E731
    assert saved.location != base.location and set(files()) == {saved.location}
    assert np.array_equal(store.load("b"), value)


def test_sqlite_save_holding_the_write_lock(sqlite_url: str, storage_dir: Path) -> None:
    """A save's row committed while the delete waited is seen by its reference check."""
    store = ll.ArtifactStore(sqlite_url, str(storage_dir))
    value = _array(6)
    base = store.save(value, "a")
    columns = [c.name for c in ARTIFACTS.c if c.name not in ("id", "name")]
    holder = sqlite3.connect(_sqlite_file(sqlite_url), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a save that found a's object: b's row, a's location
    holder.execute(
        f"INSERT INTO ll_artifacts (name, {', '.join(columns)}) "
        f"SELECT 'b', {', '.join(columns)} FROM ll_artifacts WHERE name = 'a'"
    )
    removing = _Thread(lambda: store.delete("a", 0))
    time.sleep(0.5)
    assert removing.is_alive()
    holder.execute("COMMIT")
    holder.close()
    assert removing.result() == 1
    assert base.location in _local_files(storage_dir)
    assert np.array_equal(store.load("b"), value)
    _assert_consistent(store, lambda: _local_files(storage_dir))


def test_a_reusing_save_whose_commit_reply_is_lost(pg_url: str, storage_dir: Path) -> None:
    """Outcome unknown: the row, if committed, points at the shared object, so its own copy goes."""
    direct = ll.ArtifactStore(pg_url, str(storage_dir))
    value = _array(7)
    base = direct.save(value, "a")
    proxy = TcpProxy(5432)
    try:
        url = sa.make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
        store = ll.ArtifactStore(url, str(storage_dir))
        store.save("warm", "w")
        proxy.cut_after_message(b"COMMIT\x00")
        with pytest.raises(ll.DatabaseError):
            store.save(value, "b")
        assert proxy.cut_done.wait(10)
    finally:
        proxy.cut()
    assert direct.get("b").location == base.location  # the server did commit it
    files = lambda: _local_files(storage_dir)  # noqa: E731
    assert len(files()) == 2  # a's (shared) and "warm": no copy left behind
    _assert_consistent(direct, files)


# -- on S3, an identical array is not even uploaded: its digest is known first (prehash) ------


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_an_identical_array_is_not_uploaded_again(
    request: pytest.FixtureRequest, db: str, endpoint: str, bucket: str
) -> None:
    """Bytes sent to S3 counted by a proxy: none for the identical 16 MiB array."""
    proxy = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    try:
        options = {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{proxy.port}"}}
        store = ll.ArtifactStore(_db(request, db), f"s3://{bucket}/runs", storage_options=options)
        client = s3_client(endpoint)
        value = _array(8, 2 * BIG)
        first = store.save(value, "a")
        sent = proxy.relayed[UP]
        again = store.save(value, "b")
        assert proxy.relayed[UP] == sent  # not one byte: no upload, no delete
        assert again.location == first.location
        for column in ("serializer", "size_bytes", "digest", "value_type", "libraries"):
            assert getattr(again, column) == getattr(first, column), column
        assert (again.version, again.created_at > first.created_at) == (0, True)
        assert np.array_equal(store.load("b"), value)
        other = store.save(_array(9, 2 * BIG), "c")  # a new value: uploaded as always
        assert proxy.relayed[UP] - sent > other.size_bytes
        for small in (value[:1000], value[::2]):  # too small, not contiguous: written, then shared
            before = proxy.relayed[UP]
            one, two = store.save(small, "d"), store.save(small, "e")
            assert one.location == two.location
            assert proxy.relayed[UP] - before > 2 * one.size_bytes
        _assert_consistent(store, lambda: _s3_files(client, bucket))
        assert len(_s3_files(client, bucket)) == 4
    finally:
        proxy.cut()


# -- dedup = false: every save keeps its own copy ------------------------------------------


def test_dedup_off_keeps_a_copy_per_save(
    request: pytest.FixtureRequest, db_url: str, endpoint: str, bucket: str
) -> None:
    """With dedup off, identical saves write (and upload) their own objects, prehash included."""
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    store = ll.ArtifactStore(
        db_url, f"s3://{bucket}/runs", storage_options=options, dedup=False, cache_dir="none"
    )
    assert store.settings.dedup is False
    client = s3_client(endpoint)
    value = _array(10, 2 * BIG)  # large enough for prehash, which must not run either
    saved = [store.save(value, name) for name in ("a", "b", "a")]
    assert len({a.location for a in saved}) == 3
    assert len({a.digest for a in saved}) == 1
    files = _s3_files(client, bucket)
    assert sorted(files) == sorted(a.location for a in saved)
    assert set(files.values()) == {saved[0].size_bytes}
    assert store.delete("a", "all") == 2
    assert np.array_equal(store.load("b"), value)
    _assert_consistent(store, lambda: _s3_files(client, bucket))


def test_dedup_setting_from_luigi_cfg_and_options(
    tmp_path: Path, luigi_cfg: Callable[[str], Path]
) -> None:
    """``[artifact_store] dedup`` and ``options.set("dedup", ...)`` reach the settings."""
    from linea_luigi.settings import resolve

    luigi_cfg(
        f"[artifact_store]\ndb_connection = sqlite:///{tmp_path}/m.db\n"
        f"artifact_storage_dir = {tmp_path}/v\ndedup = false\n"
    )
    assert resolve.resolve_settings().dedup is False
    ll.options.set("dedup", True)
    assert resolve.resolve_settings().dedup is True
    with pytest.raises(ll.ConfigError, match="dedup"):
        ll.ArtifactStore(f"sqlite:///{tmp_path}/m.db", str(tmp_path / "v"), dedup="maybe")  # type: ignore[arg-type]
