"""The hot path's held connections: per thread and process, replaced when they die."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

import linea_luigi as ll
from linea_luigi.db import fast


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
    engine = store._engine()
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
