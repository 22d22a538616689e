"""Bounded soak: many processes, the real scheduler, PostgreSQL and S3, then an audit.

``test_soak`` runs ``linea-luigid`` on loopback with task history on
PostgreSQL, values on moto's S3 server, and four ``luigi --workers 2`` lanes
(up to eight worker processes at once, each task in its own forked process)
over overlapping DAGs for about a minute (``LL_SOAK_SECONDS`` of load, 50 by
default). Afterwards: no lost artifact (every row's value is in S3 and
verifies, and S3 holds nothing else), versions contiguous per name, each task
ran once, the task history has a DONE event for every task and no failure,
and PostgreSQL's connection count is back where it started.

``test_8_processes_x_250_saves`` is the contention check on one name.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fault_support import S3_ENV, keys, moto_s3, pending_uploads, s3_client, wait_until
from luigi_support import write_module
from test_luigid_history import LINEA_LUIGID, child_env, scheduler_process

import linea_luigi as ll
from linea_luigi.db.engine import dispose_all

REPO = Path(__file__).resolve().parents[1]
LOAD_SECONDS = float(os.environ.get("LL_SOAK_SECONDS", "50"))
LANES = 4
WORKERS_PER_LANE = 2

SOAK_TASKS = """
    import luigi
    import numpy as np
    import linea_luigi as ll

    class SoakShared(ll.ArtifactTaskMixin, luigi.Task):
        round = luigi.IntParameter()
        k = luigi.IntParameter()

        def run(self):
            self.save({"round": self.round, "k": self.k, "data": np.arange(2000 + self.k)})

    class SoakPart(ll.ArtifactTaskMixin, luigi.Task):
        lane = luigi.IntParameter()
        round = luigi.IntParameter()
        i = luigi.IntParameter()

        def requires(self):
            return SoakShared(round=self.round, k=self.i % 3)

        def run(self):
            shared = self.load_input()
            size = 200_000 if self.i == 0 else 1000
            pad = np.full(size, self.i, dtype=np.uint8)
            self.save({"lane": self.lane, "i": self.i, "k": shared["k"], "pad": pad})

    class SoakTop(ll.ArtifactTaskMixin, luigi.Task):
        lane = luigi.IntParameter()
        round = luigi.IntParameter()

        def requires(self):
            parts = [SoakPart(lane=self.lane, round=self.round, i=i) for i in range(4)]
            return parts + [SoakShared(round=self.round, k=k) for k in range(3)]

        def run(self):
            values = self.load_input()
            self.save({"lane": self.lane, "round": self.round, "inputs": len(values)})
"""

#: Workers wait for shared tasks other lanes run (instead of giving up), polling briskly.
#: Failures exit non-zero (Luigi's defaults are 0); a shared task another lane ran is
#: reported as "being run by another worker" or "not run", which is coordination, not failure.
LUIGI_CFG = """
[worker]
keep_alive = true
wait_interval = 0.2
wait_jitter = 0.2
[retcode]
unhandled_exception = 4
missing_data = 10
task_failed = 20
scheduling_error = 30
already_running = 0
not_run = 0
"""


def _connections(admin: sa.Engine, db: str) -> int:
    with admin.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db"), {"db": db}
            ).scalar_one()
        )


@pytest.fixture
def pg_admin(pg_url: str) -> Iterator[sa.Engine]:
    """An engine on the server's ``postgres`` database, to watch the test database from outside."""
    engine = sa.create_engine(sa.make_url(pg_url).set(database="postgres"))
    yield engine
    engine.dispose()


def _lane(
    lane: int,
    deadline: float,
    port: int,
    env: dict[str, str],
    cwd: Path,
    finished: list[tuple[int, int]],
    failures: list[str],
) -> None:
    """Run rounds 0, 1, ... of this lane's DAG until ``deadline``; record what finished."""
    round_ = 0
    while time.monotonic() < deadline and not failures:
        cmd = [
            sys.executable,
            "-m",
            "luigi",
            "--module",
            "soak_tasks",
            "SoakTop",
            f"--lane={lane}",
            f"--round={round_}",
            f"--workers={WORKERS_PER_LANE}",
            "--scheduler-host=127.0.0.1",
            f"--scheduler-port={port}",
        ]
        try:
            proc = subprocess.run(
                cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            failures.append(f"lane {lane} round {round_}: timed out")
            return
        output = proc.stdout + proc.stderr
        # ":|" is fine: a shared task another lane ran counts as "not granted run permission"
        if proc.returncode != 0 or "This progress looks :(" in output:
            failures.append(f"lane {lane} round {round_}: exit {proc.returncode}\n{output[-4000:]}")
            return
        finished.append((lane, round_))
        round_ += 1


def test_soak(
    pg_url: str,
    pg_admin: sa.Engine,
    tmp_path: Path,
    luigi_cfg: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = str(sa.make_url(pg_url).database)
    baseline = _connections(pg_admin, db)
    bucket = f"ll-soak-{uuid.uuid4().hex[:8]}"
    root = f"s3://{bucket}/soak"
    for var, value in S3_ENV.items():
        monkeypatch.setenv(var, value)
    with moto_s3() as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket=bucket)
        options = {"client_kwargs": {"endpoint_url": endpoint}}
        cfg = luigi_cfg(
            "[scheduler]\nrecord_task_history = true\n"
            f"[task_history]\ndb_connection = {pg_url}\n"
            f"[artifact_store]\nartifact_storage_dir = {root}\n"
            f"storage_options = {json.dumps(options)}\n" + LUIGI_CFG
        )
        write_module(tmp_path, "soak_tasks", SOAK_TASKS)
        env = child_env(tmp_path, cfg)
        finished: list[tuple[int, int]] = []
        failures: list[str] = []
        with scheduler_process(LINEA_LUIGID, tmp_path, env) as port:
            deadline = time.monotonic() + LOAD_SECONDS
            lanes = [
                threading.Thread(
                    target=_lane, args=(n, deadline, port, env, tmp_path, finished, failures)
                )
                for n in range(LANES)
            ]
            for t in lanes:
                t.start()
            for t in lanes:
                t.join(timeout=LOAD_SECONDS + 180)
            assert not any(t.is_alive() for t in lanes), "a lane did not finish"
            server_log = "".join(
                p.read_text() for p in tmp_path.glob(f"logs-{port}/*") if p.is_file()
            )
        assert failures == [], failures[0]
        assert len(finished) >= 2 * LANES, f"too little work got done: {finished}"
        assert "Traceback" not in server_log, server_log[-4000:]

        store = ll.ArtifactStore(pg_url, root, options)
        _audit(store, pg_url, client, bucket, finished)
        dispose_all()
    wait_until(
        lambda: _connections(pg_admin, db) == baseline,
        f"PostgreSQL connections to go back to {baseline}",
        timeout=20,
    )


def _audit(
    store: ll.ArtifactStore,
    pg_url: str,
    client: Any,
    bucket: str,
    finished: list[tuple[int, int]],
) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT name, version, location, task_id, params FROM ll_artifacts")
            ).all()
            events = conn.execute(
                sa.text(
                    "SELECT t.task_id, e.event_name FROM tasks t "
                    "JOIN task_events e ON e.task_id = t.id"
                )
            ).all()
    finally:
        engine.dispose()

    # no lost artifact: every finished lane-round has its top artifact, every row its value
    tops = {(int(r.params["lane"]), int(r.params["round"])) for r in rows if r.name == "SoakTop"}
    assert set(finished) <= tops, sorted(set(finished) - tops)
    for row in rows:
        store.load(row.name, row.version)  # present in S3, size and digest verified
    prefix = "soak/"
    # nothing else (identical values share one object)
    assert keys(client, bucket) == sorted({prefix + r.location for r in rows})
    assert pending_uploads(client, bucket) == []

    # versions contiguous per name
    by_name: dict[str, list[int]] = {}
    for row in rows:
        by_name.setdefault(row.name, []).append(row.version)
    assert set(by_name) == {"SoakShared", "SoakPart", "SoakTop"}
    for name, versions in by_name.items():
        assert sorted(versions) == list(range(len(versions))), name

    # each task ran once, and the history saw every one of them finish
    runs = Counter(r.task_id for r in rows)
    assert max(runs.values()) == 1, [t for t, n in runs.items() if n > 1]
    done = {task_id for task_id, event in events if event == "DONE"}
    assert set(runs) <= done, sorted(set(runs) - done)[:5]
    assert {task_id for task_id, _ in events} == done  # no task without its DONE
    assert not [e for e in events if e.event_name == "FAILED"]
    print(f"soak: {len(finished)} lane-rounds, {len(rows)} artifacts, {len(done)} tasks DONE")


WRITER = """
import json, pickle, sys, time
from pathlib import Path

store = pickle.loads(Path(sys.argv[1]).read_bytes())
me, ready, go, saves = int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
store.latest_version("one")  # connect and check the schema before the start
(ready / str(me)).touch()
while not go.exists():
    time.sleep(0.001)
print(json.dumps([store.save((me, i), "one").version for i in range(saves)]))
"""


def test_8_processes_x_250_saves(pg_url: str, tmp_path: Path) -> None:
    """Eight spawned processes save 250 values each to one name: versions 0..1999 exactly."""
    writers, saves = 8, 250
    storage = tmp_path / "artifacts"
    store = ll.ArtifactStore(db_url=pg_url, storage_dir=str(storage))
    pickled = tmp_path / "store.pickle"
    pickled.write_bytes(pickle.dumps(store))
    ready, go = tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    args = [str(pickled), "", str(ready), str(go), str(saves)]
    children = []
    for n in range(writers):
        args[1] = str(n)
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(WRITER), *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        wait_until(lambda: len(list(ready.iterdir())) == writers, "the writers to start", 60)
        go.touch()
        outputs = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()

    claimed: dict[int, tuple[int, int]] = {}
    for n, (child, (stdout, stderr)) in enumerate(zip(children, outputs, strict=True)):
        assert child.returncode == 0, stderr
        assert "error" not in stderr.lower(), stderr
        versions = json.loads(stdout)
        assert len(versions) == saves and versions == sorted(versions)
        for i, version in enumerate(versions):
            assert version not in claimed, f"version {version} handed out twice"
            claimed[version] = (n, i)
    assert sorted(claimed) == list(range(writers * saves))
    found = store.versions("one")
    assert [a.version for a in found] == list(range(writers * saves))
    assert len({a.location for a in found}) == writers * saves
    for artifact in found[:: writers * saves // 50]:  # rows point at their writer's value
        assert artifact.load() == claimed[artifact.version]
    assert len([p for p in storage.rglob("*") if p.is_file()]) == writers * saves
