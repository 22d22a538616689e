"""The hot path's held connections: per thread and process, replaced when they die."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

import linea_luigi as ll
from linea_luigi.db import executor as fast


def _terminate_backends(pg_url: str) -> int:
    """Kill every other session on the test database, as a server restart would."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    return int(killed)


def test_a_connection_killed_while_idle_is_replaced(pg_url: str, storage_dir: Path) -> None:
    store = ll.ArtifactStore(pg_url.replace("postgresql+psycopg2", "postgresql"), storage_dir)
    store.save("v0", "thing")
    assert store.exists("thing")
    assert _terminate_backends(pg_url) >= 1
    assert store.exists("thing")  # a read retries once on a new connection
    assert _terminate_backends(pg_url) >= 1
    assert store.save("v1", "thing").version == 1  # so does a write that had not begun
    assert [store.load("thing", v) for v in (0, 1)] == ["v0", "v1"]


def test_each_thread_holds_its_own_connection(store: ll.ArtifactStore) -> None:
    store.save(1, "thing")
    engine = store.records.engine()
    seen: list[object] = []

    def use() -> None:
        assert store.exists("thing")
        seen.append(fast.held_connection(engine))

    for _ in range(3):
        worker = threading.Thread(target=use)
        worker.start()
        worker.join()
    mine = fast.held_connection(engine)
    assert len({id(c) for c in [*seen, mine]}) == 4
    # the connections of ended threads are closed when the next one is made
    assert sum(1 for e in fast._all_held if e[2] in seen) <= 1


def test_database_errors_are_short_in_scripts(tmp_path: Path) -> None:
    """A script that cannot reach its database shows our line, not 100+ lines of driver frames."""
    script = (
        "import linea_luigi as ll\n"
        f"ll.ArtifactStore('postgresql://postgres:s3cret@127.0.0.1:1/x', {str(tmp_path)!r})"
        ".save(1, 'x')\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1
    assert lines[-1].startswith("linea_luigi.errors.DatabaseError: The artifact database")
    assert "s3cret" not in run.stderr
    assert "The above exception was the direct cause" not in run.stderr
    assert len(lines) < 30, run.stderr


def test_the_driver_error_stays_available(tmp_path: Path) -> None:
    store = ll.ArtifactStore("postgresql://postgres@127.0.0.1:1/x", tmp_path)
    with pytest.raises(ll.DatabaseError) as info:
        store.exists("x")
    assert info.value.__cause__ is None
    assert "Connection refused" in str(info.value.driver_error)


def test_a_write_rolls_back_whole_when_its_first_statement_fails(
    pg_url: str, storage_dir: Path
) -> None:
    """On PostgreSQL BEGIN travels with the first statement: a failure there still rolls back."""
    store = ll.ArtifactStore(pg_url, storage_dir)
    store.save("v0", "thing")
    engine = store.records.engine()
    counters = sa.table("ll_version_counters", sa.column("name"), sa.column("next_version"))
    bump = counters.update().values(next_version=99).where(counters.c.name == "thing")
    broken = sa.text("SELECT 1/0")

    def fail_first(tx: fast.Executor) -> None:
        tx.execute(broken, {})

    def fail_second(tx: fast.Executor) -> None:
        tx.execute(bump, {})
        tx.execute(broken, {})

    for work in (fail_first, fail_second):
        with pytest.raises(ll.DatabaseError, match="division by zero"):
            fast.run(store.settings.database_url, engine, work, write=True, doing="testing")
        # the held connection is usable (no "current transaction is aborted"), nothing kept
        assert store.latest_version("thing") == 0
    assert store.save("v1", "thing").version == 1
    status = fast.held_connection(engine).get_transaction_status()
    assert status == 0  # psycopg2's TRANSACTION_STATUS_IDLE: no transaction left open
