"""Lock waits are bounded, visible and configurable (``[artifact_store] lock_timeout``).

Another process's lock is held by a real second connection to the same SQLite file
(``BEGIN EXCLUSIVE`` through the sqlite3 module) or the same PostgreSQL database
(``LOCK TABLE``). Before, a save under a held SQLite lock waited 364 s in silence
and then said the database was "unavailable".
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

import linea_luigi as ll
from linea_luigi.db.engine import LOCK_NOTICE_AFTER_S

WAITING = "waiting for another process's write lock"


@contextmanager
def sqlite_lock_held(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds the file's write lock until the block ends."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def _stored_files(storage_dir: Path) -> list[Path]:
    return [p for p in storage_dir.rglob("*") if p.is_file()]


def test_a_save_gives_up_at_lock_timeout_and_says_the_database_is_locked(
    tmp_path: Path, storage_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "meta.sqlite"
    store = ll.ArtifactStore(f"sqlite:///{db}", str(storage_dir), lock_timeout=1.5)
    store.save("first", "x")  # schema made, one value stored
    caplog.set_level(logging.WARNING)
    with sqlite_lock_held(db):
        started = time.monotonic()
        with pytest.raises(ll.DatabaseLockedError) as err:
            store.save("second", "x")
        waited = time.monotonic() - started
        assert store.exists("x", 0)  # readers are not blocked by a writer (WAL)
    assert 1.5 <= waited < 4.0
    message = str(err.value)
    assert "locked by another process" in message
    assert "unavailable" not in message
    assert "lock_timeout is 1.5 s" in message and "saving artifact 'x'" in message
    assert isinstance(err.value, ll.DatabaseError)
    assert WAITING not in caplog.text  # 1.5 s is below the notice threshold
    # nothing half-written: one row, one value file
    assert [a.version for a in store.versions("x")] == [0]
    assert len(_stored_files(storage_dir)) == 1


def test_a_long_wait_is_logged_once_naming_the_file(
    tmp_path: Path, storage_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "meta.sqlite"
    timeout = LOCK_NOTICE_AFTER_S + 1.5
    store = ll.ArtifactStore(f"sqlite:///{db}", str(storage_dir), lock_timeout=timeout)
    store.save("first", "x")
    caplog.set_level(logging.WARNING)
    with sqlite_lock_held(db), pytest.raises(ll.DatabaseLockedError):
        store.save("second", "x")
    notices = [r for r in caplog.records if WAITING in r.getMessage()]
    assert len(notices) == 1, caplog.text
    assert str(db) in notices[0].getMessage()
    assert "saving artifact 'x'" in notices[0].getMessage()


def test_a_save_goes_through_once_the_lock_is_released(tmp_path: Path, storage_dir: Path) -> None:
    db = tmp_path / "meta.sqlite"
    store = ll.ArtifactStore(f"sqlite:///{db}", str(storage_dir), lock_timeout=20)
    store.save("first", "x")
    holder = sqlite3.connect(db, isolation_level=None, timeout=0, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(1.2, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        started = time.monotonic()
        saved = store.save("second", "x")
        waited = time.monotonic() - started
    finally:
        release.join()
        holder.close()
    assert saved.version == 1 and store.load("x") == "second"
    assert 1.0 <= waited < 5.0


def test_deletes_and_aliases_are_bounded_too(tmp_path: Path, storage_dir: Path) -> None:
    db = tmp_path / "meta.sqlite"
    store = ll.ArtifactStore(f"sqlite:///{db}", str(storage_dir), lock_timeout=1)
    store.save("first", "x")
    with sqlite_lock_held(db):
        for attempt in (
            lambda: store.delete("x", 0),
            lambda: store.set_alias("x", 0, "prod"),
        ):
            started = time.monotonic()
            with pytest.raises(ll.DatabaseLockedError):
                attempt()
            assert time.monotonic() - started < 3.5
    assert store.load("x", 0) == "first"


def test_lock_timeout_from_luigi_cfg_and_options(
    luigi_cfg: Callable[[str], Path], tmp_path: Path
) -> None:
    luigi_cfg(
        f"[artifact_store]\ndb_connection = sqlite:///{tmp_path / 'm.sqlite'}\n"
        f"artifact_storage_dir = {tmp_path / 'a'}\nlock_timeout = 2.5\n"
    )
    assert ll.resolve_settings().lock_timeout == 2.5
    assert ll.artifact_store().settings.lock_timeout == 2.5
    ll.options.set("lock_timeout", "7")
    assert ll.artifact_store().settings.lock_timeout == 7.0
    ll.options.set("lock_timeout", None)
    assert ll.resolve_settings().lock_timeout == 2.5


def test_lock_timeout_defaults_to_a_minute(sqlite_url: str, storage_dir: Path) -> None:
    assert ll.ArtifactStore(sqlite_url, str(storage_dir)).settings.lock_timeout == 60.0
    assert ll.resolve_settings().lock_timeout == 60.0


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "nan", "inf", "1e400", "86401"])
def test_a_bad_lock_timeout_is_a_config_error(
    bad: str, luigi_cfg: Callable[[str], Path], tmp_path: Path
) -> None:
    luigi_cfg(f"[artifact_store]\nartifact_storage_dir = {tmp_path / 'a'}\nlock_timeout = {bad}\n")
    with pytest.raises(ll.ConfigError, match="lock_timeout must be a number of seconds"):
        ll.resolve_settings()


def test_postgresql_lock_waits_end_at_lock_timeout(pg_url: str, storage_dir: Path) -> None:
    store = ll.ArtifactStore(pg_url, str(storage_dir), lock_timeout=1)
    store.save("first", "x")
    holder = sa.create_engine(pg_url)
    try:
        with holder.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE ll_artifacts IN EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(ll.DatabaseLockedError) as err:
                store.save("second", "x")
            waited = time.monotonic() - started
            with pytest.raises(ll.DatabaseLockedError):
                store.delete("x", 0)
    finally:
        holder.dispose()
    assert 0.9 <= waited < 4.0
    assert "locked by another process" in str(err.value)
    assert "unavailable" not in str(err.value)
    assert [a.version for a in store.versions("x")] == [0]
    assert len(_stored_files(storage_dir)) == 1  # the unpublished value was removed
    assert store.save("third", "x").version == 1  # the connection is usable afterwards
