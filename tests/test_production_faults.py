"""Production faults: PostgreSQL or S3 going away in the middle of real work.

The database or S3 server sits behind a loopback TCP proxy (``fault_support``)
that the test cuts at a chosen moment, which is what a client sees when the
server dies or the network drops; starting the proxy again is the recovery.
Checked each time: the failure is one clear line naming the location with
the password masked, no row exists without its value, nothing half-written is
visible, and work resumes after recovery in the same process.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import luigi
import numpy as np
import pytest
import sqlalchemy as sa
from fault_support import (
    S3_ENV,
    UP,
    TcpProxy,
    keys,
    pending_uploads,
    s3_client,
)
from luigi.execution_summary import LuigiStatusCode

import linea_luigi as ll
from linea_luigi.db.engine import dispose_all

PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]
PARTS = 6
#: the fault to inject when a part runs (part number -> action)
HOOKS: dict[int, Callable[[], None]] = {}


class PfPart(ll.ArtifactTaskMixin, luigi.Task):
    part = luigi.IntParameter()

    @property
    def priority(self) -> int:  # parts run in order: the fault lands mid-pipeline
        return PARTS - int(self.part)

    def run(self) -> None:
        hook = HOOKS.pop(self.part, None)
        if hook is not None:
            hook()
        self.save(np.full(1000, self.part))


class PfReport(ll.ArtifactTaskMixin, luigi.Task):
    def requires(self) -> list[PfPart]:
        return [PfPart(part=p) for p in range(PARTS)]

    def run(self) -> None:
        self.save(sum(int(v[0]) for v in self.load_input()))


FAILURES: list[tuple[str, BaseException]] = []


@PfPart.event_handler(luigi.Event.FAILURE)
def _failed(task: luigi.Task, exception: BaseException) -> None:
    FAILURES.append((task.task_id, exception))


@pytest.fixture(autouse=True)
def _clean_hooks() -> Iterator[None]:
    HOOKS.clear()
    FAILURES.clear()
    yield
    HOOKS.clear()
    FAILURES.clear()


def _build() -> Any:
    return luigi.build([PfReport()], local_scheduler=True, workers=1, detailed_summary=True)


def _db_name(url: str) -> str:
    return str(sa.make_url(url).database)


def _rows(pg_url: str) -> list[Any]:
    """``ll_artifacts`` read straight from PostgreSQL (not through the proxy)."""
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT name, version, location FROM ll_artifacts")))
    finally:
        engine.dispose()


def _assert_every_row_has_its_value(store: ll.ArtifactStore, pg_url: str) -> list[Any]:
    rows = _rows(pg_url)
    for name, version, _ in rows:
        store.load(name, version)  # present, digest and size verified, unpickled
    return rows


def _whole(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A proxy in front of PostgreSQL, and a password-bearing URL through it (trust auth)."""
    proxy = TcpProxy(5432)
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{proxy.port}/{_db_name(pg_url)}"
    try:
        yield proxy, url
    finally:
        proxy.cut()
        dispose_all()  # before the fixture drops the database


def test_postgres_stops_mid_pipeline(
    pg_url: str, pg_proxy: tuple[TcpProxy, str], storage_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL goes away while part 3 runs: clear failures, no row without value, rerun ok."""
    proxy, url = pg_proxy
    ll.options.set("database_url", url)
    ll.options.set("artifact_storage_dir", str(storage_dir))
    store = ll.artifact_store()
    caplog.set_level(logging.DEBUG)
    HOOKS[3] = proxy.cut

    result = _build()
    assert result.status == LuigiStatusCode.FAILED, result.summary_text
    assert FAILURES, "no task failed: the fault was not injected"
    masked = f"postgres:***@127.0.0.1:{proxy.port}/{_db_name(pg_url)}"
    for task_id, err in FAILURES:
        assert isinstance(err, ll.DatabaseError), (task_id, _whole(err))
        message = str(err)
        assert "\n" not in message and masked in message, message
        assert "unavailable" in message and "Check that the database is running" in message
        assert PASSWORD not in _whole(err)
    assert PASSWORD not in caplog.text
    assert sorted(t for t, _ in FAILURES) == sorted(PfPart(part=p).task_id for p in (3, 4, 5))
    direct = ll.ArtifactStore(pg_url, str(storage_dir))  # past the proxy, to audit the rows
    done = _assert_every_row_has_its_value(direct, pg_url)
    assert sorted((r.name, r.version) for r in done) == [("PfPart", v) for v in range(3)]

    proxy.start()  # the database is back: this very process carries on
    assert store.latest_version("PfPart") == len(done) - 1
    result = _build()
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    rows = _assert_every_row_has_its_value(store, pg_url)
    assert sorted(r.version for r in rows if r.name == "PfPart") == list(range(PARTS))
    assert store.load("PfReport") == sum(range(PARTS))
    values = sorted(str(p.relative_to(storage_dir)) for p in storage_dir.rglob("*") if p.is_file())
    assert values == sorted(r.location for r in rows)  # and no value of a failed save is left


def test_postgres_backends_terminated_mid_pipeline(pg_url: str, storage_dir: Path) -> None:
    """A restart-like kill of every connection between two tasks is ridden out in-process."""
    db = _db_name(pg_url)
    ll.options.set("database_url", pg_url)
    ll.options.set("artifact_storage_dir", str(storage_dir))
    store = ll.artifact_store()
    admin = sa.create_engine(pg_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    killed: list[int] = []

    def terminate() -> None:
        # select first, then terminate one by one: SQL does not promise to evaluate a
        # WHERE clause's conditions in order, and other databases' sessions must live
        with admin.connect() as conn:
            pids = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": db},
            ).scalars()
            for pid in list(pids):
                if conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar():
                    killed.append(pid)

    HOOKS[3] = terminate
    try:
        result = _build()
    finally:
        admin.dispose()
    assert killed, "no connection was terminated: the fault was not injected"
    assert result.status == LuigiStatusCode.SUCCESS, result.summary_text
    assert FAILURES == []
    rows = _assert_every_row_has_its_value(store, pg_url)
    assert sorted(r.version for r in rows if r.name == "PfPart") == list(range(PARTS))


def test_commit_whose_reply_is_lost_keeps_its_value(
    pg_url: str, pg_proxy: tuple[TcpProxy, str], storage_dir: Path
) -> None:
    """The connection drops after COMMIT reached the server but before its answer came back.

    The save fails (its outcome is unknown to the client), yet the server
    committed the row: the value must stay, or a row would exist without it.
    """
    proxy, url = pg_proxy
    store = ll.ArtifactStore(db_url=url, storage_dir=str(storage_dir))
    store.save("warm", "c")  # schema ready, connection held
    proxy.cut_after_message(b"COMMIT\x00")
    with pytest.raises(ll.DatabaseError) as info:
        store.save("committed?", "c")
    assert proxy.cut_done.wait(10)
    assert PASSWORD not in _whole(info.value) and "\n" not in str(info.value)
    proxy.start()
    rows = _assert_every_row_has_its_value(store, pg_url)
    assert sorted(r.version for r in rows) == [0, 1]  # the server did commit it
    assert store.load("c") == "committed?"
    assert store.save("next", "c").version == 2


# -- S3 ---------------------------------------------------------------------------------


def test_s3_stops_mid_save(endpoint: str, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 server goes away while the second part of a 120 MB value uploads.

    Nothing becomes visible. The abort of the multipart upload cannot reach
    the server either, so it is pending while the server is away; the next
    successful save, once the server is back, aborts it.
    """
    for var, value in S3_ENV.items():
        monkeypatch.setenv(var, value)
    bucket = f"ll-pf-{uuid.uuid4().hex[:8]}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)
    proxy = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    root = f"s3://{bucket}/runs"
    store = ll.ArtifactStore(
        db_url=sqlite_url,
        storage_dir=root,
        storage_options={
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{proxy.port}"},
            # one attempt: retrying a refused connection only delays the same error
            "config_kwargs": {"retries": {"max_attempts": 1}},
        },
    )
    try:
        store.save("before", "m")
        big = np.ones(120 * 2**20, dtype=np.uint8)  # parts of 56 MB: the 2nd starts at 112 MB
        proxy.cut_after(UP, 80 * 2**20)
        with pytest.raises(ll.StorageError) as info:
            store.save(big, "m")
        assert proxy.cut_done.wait(10)
        message = str(info.value)
        assert message.startswith(f"Cannot write {root}/m/") and "reachable" in message
        assert "\n" not in message
        assert [a.version for a in store.versions("m")] == [0]
        assert len(keys(client, bucket)) == 1  # only "before"
        assert len(pending_uploads(client, bucket)) == 1  # the abort could not get through

        proxy.start()  # the server is back
        assert store.save("after", "m").version == 1
        assert pending_uploads(client, bucket) == []
        assert len(keys(client, bucket)) == 2
        assert [store.load("m", v) for v in (0, 1)] == ["before", "after"]
    finally:
        proxy.cut()
