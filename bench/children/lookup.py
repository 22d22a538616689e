"""``exists(name, key=...)`` and ``latest_version(name)`` latency over many artifacts.

Rows are bulk-inserted with SQLAlchemy Core into the ``ll_artifacts`` table as
reflected from the database, so only ``name``, ``version``, ``identity_key``
and ``location`` are named here; every other NOT NULL column gets a value
chosen by its type, which keeps this working while the schema evolves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

NAMES_PER_100K = 1000
KEYS_PER_NAME = 10
BATCH = 5000


def identity(name: str, k: int) -> str:
    return hashlib.sha256(f"{name}/{k}".encode()).hexdigest()


def layout(rows: int) -> tuple[int, int]:
    """(number of names, versions per name) for ``rows`` artifacts."""
    names = max(1, rows * NAMES_PER_100K // 100_000)
    return names, rows // names


def filler(column: sa.Column[Any]) -> Callable[[int], Any] | None:
    """A plausible value for a NOT NULL column without a default, by type."""
    if column.nullable or column.server_default is not None:
        return None
    t = column.type
    if isinstance(t, sa.Boolean):
        return lambda i: False
    if isinstance(t, (sa.Integer, sa.Numeric)):
        return lambda i: 1000 + i
    if isinstance(t, sa.DateTime):
        now = dt.datetime.now(dt.timezone.utc)
        return lambda i: now
    if isinstance(t, sa.JSON):
        return lambda i: {}
    if isinstance(t, sa.LargeBinary):
        return lambda i: b"bench"
    if isinstance(t, sa.String):
        length = t.length or 64
        return lambda i: hashlib.sha256(str(i).encode()).hexdigest()[:length]
    return lambda i: str(i)


def populate(db_url: str, storage_dir: str, rows: int) -> dict[str, Any]:
    """Create the store with one real save, then bulk-insert ``rows`` artifact rows."""
    import linea_luigi as ll

    ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir).save({"seed": 1}, "bench.seed")
    engine = sa.create_engine(db_url)
    table = sa.Table("ll_artifacts", sa.MetaData(), autoload_with=engine)
    named = {"name", "version", "identity_key", "location"}
    pk = [c.name for c in table.primary_key.columns]
    fillers: dict[str, Callable[[int], Any]] = {}
    for column in table.columns:
        if column.name in named or (pk == [column.name] and isinstance(column.type, sa.Integer)):
            continue  # set below, or an autoincrement id
        fill = filler(column)
        if fill is not None:
            fillers[column.name] = fill
    names, per_name = layout(rows)
    start = time.perf_counter()
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(names * per_name):
            name, version = f"bench.n{i // per_name}", i % per_name
            row = {col: fill(i) for col, fill in fillers.items()}
            row.update(
                name=name,
                version=version,
                identity_key=identity(name, version % KEYS_PER_NAME),
                location=f"bench/{name}/{version}.pkl",
            )
            batch.append(row)
            if len(batch) == BATCH:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE ll_artifacts")  # what autovacuum would do
    inserted = time.perf_counter() - start
    engine.dispose()
    return {"seconds": inserted, "rows": names * per_name + 1, "filled": sorted(fillers)}


def measure(db_url: str, storage_dir: str, rows: int, calls: int) -> dict[str, Any]:
    """Median per-call latency (µs) of exists-by-key and latest_version in a fresh process."""
    import linea_luigi as ll

    store = ll.ArtifactStore(db_url=db_url, storage_dir=storage_dir)
    names, per_name = layout(rows)
    probes = [(f"bench.n{(i * 7919) % names}", i % KEYS_PER_NAME) for i in range(calls)]
    ops: dict[str, Callable[[str, int], Any]] = {
        "exists_key": lambda n, k: store.exists(n, key=identity(n, k)),
        "latest": lambda n, k: store.latest_version(n),
        "exists_missing": lambda n, k: store.exists(n, key=identity(n, k + 99)),
    }
    expected = {"exists_key": True, "latest": per_name - 1, "exists_missing": False}
    result: dict[str, Any] = {}
    for op, call in ops.items():
        for name, k in probes[:20]:  # warm-up: engine, pool, statement caches
            call(name, k)
        times = []
        for name, k in probes:
            t0 = time.perf_counter_ns()
            found = call(name, k)
            times.append(time.perf_counter_ns() - t0)
            if found != expected[op]:
                raise AssertionError(f"{op}({name}, {k}) returned {found!r}")
        result[op] = statistics.median(times) / 1000
    result["seconds"] = result["exists_key"]
    return result
