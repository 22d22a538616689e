"""No task computed twice: ``run()`` under a lock on the identity key, held in the database.

Real processes each run ``luigi.build(..., local_scheduler=True)`` of the same
tasks at once, on SQLite and on PostgreSQL. Every task notes each run in a
shared run log (one short appended line), so runs are counted across
processes; a trigger on ``ll_task_locks`` counts the lock rows written.
"""

from __future__ import annotations

import importlib
import inspect
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import luigi
import pytest
import sqlalchemy as sa
from luigi_support import build, child_env, use_as_default

import linea_luigi as ll
from linea_luigi.db.queries.task_locks import lock_id
from linea_luigi.integration import task_lock

LEASE_S = 2.0
TASKS = '''
"""Tasks of tests/test_task_lock.py, for the test process and its children."""
import json, logging, os, sys, time
import luigi
import linea_luigi as ll
from linea_luigi.integration import task_lock

if os.environ.get("LL_TEST_LEASE_S"):
    task_lock.LEASE_S = float(os.environ["LL_TEST_LEASE_S"])


def note(task, what="run"):
    with open(os.environ["LL_TEST_RUNLOG"], "a") as log:
        log.write(f"{what} {task.task_id} {os.getpid()} {time.time()!r}\\n")


class Leaf(ll.ArtifactTaskMixin, luigi.Task):
    task_namespace = "locktest"
    i = luigi.IntParameter()

    def run(self):
        note(self)
        time.sleep(float(os.environ.get("LL_TEST_SLEEP", "0")))
        self.save(self.i)


class Top(ll.ArtifactTaskMixin, luigi.Task):
    task_namespace = "locktest"
    n = luigi.IntParameter()

    def requires(self):
        return [Leaf(i=i) for i in range(self.n)]

    def run(self):
        note(self)
        self.save(sum(self.load_input()))


class Slow(ll.ArtifactTaskMixin, luigi.Task):
    task_namespace = "locktest"
    tag = luigi.Parameter()

    def run(self):
        note(self)
        time.sleep(float(os.environ.get("LL_TEST_HOLD", "0")))
        self.save(self.tag)


class Flaky(ll.ArtifactTaskMixin, luigi.Task):
    task_namespace = "locktest"

    def run(self):
        note(self)
        if os.environ.get("LL_TEST_FAIL"):
            raise RuntimeError("failing on purpose")
        self.save(1)


class Dynamic(ll.ArtifactTaskMixin, luigi.Task):
    """Leaves yielded from run(): dynamic dependencies."""

    task_namespace = "locktest"
    n = luigi.IntParameter()

    def run(self):
        """Sum the leaves it yields."""
        note(self, "start")
        leaves = yield [Leaf(i=100 + i) for i in range(self.n)]
        note(self)
        self.save(sum(t.load() for t in leaves))


def main():
    name, params, ready, go = sys.argv[1:5]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    task = globals()[name](**json.loads(params))
    open(os.path.join(ready, str(os.getpid())), "w").close()
    while go != "-" and not os.path.exists(go):
        time.sleep(0.002)
    sys.exit(0 if luigi.build([task], local_scheduler=True) else 3)
'''


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lock_tasks")
    (folder / "lock_tasks.py").write_text(TASKS)
    return folder


@pytest.fixture(scope="module")
def tasks(tasks_dir: Path) -> Iterator[ModuleType]:
    """The same task classes in this process (imported once: Luigi registers classes)."""
    sys.path.insert(0, str(tasks_dir))
    try:
        yield importlib.import_module("lock_tasks")
    finally:
        sys.path.remove(str(tasks_dir))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    return sqlite_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(
    db_url: str, tmp_path: Path, tasks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> ll.ArtifactStore:
    """The default store of this process and of the children; schema created, writes audited."""
    monkeypatch.setenv("LL_TEST_RUNLOG", str(tmp_path / "runs.log"))
    made = use_as_default(ll.ArtifactStore(db_url=db_url, storage_dir=str(tmp_path / "art")))
    made.exists("schema")  # creates the schema, so the audit trigger has its table
    _audit_lock_rows(db_url)
    return made


def _audit_lock_rows(db_url: str) -> None:
    """Record every row written to ll_task_locks (inserted or taken over) in lock_audit."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE lock_audit (key VARCHAR(64))")
        if engine.dialect.name == "sqlite":
            for event in ("INSERT", "UPDATE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER audit_{event} AFTER {event} ON ll_task_locks "
                    "BEGIN INSERT INTO lock_audit VALUES (new.key); END"
                )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO lock_audit VALUES (NEW.key); RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER audit AFTER INSERT OR UPDATE ON ll_task_locks "
                "FOR EACH ROW EXECUTE FUNCTION audit()"
            )
    engine.dispose()


def _scalar(db_url: str, sql: str, **params: Any) -> Any:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def _lock_free(db_url: str, key: str) -> bool:
    """Whether nobody holds the lock on ``key`` (rows; on PostgreSQL the advisory lock too)."""
    if _scalar(db_url, "SELECT count(*) FROM ll_task_locks WHERE key = :k", k=key):
        return False
    if not db_url.startswith("postgresql"):
        return True
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:  # one session: try, then give it back
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:i)"), {"i": lock_id(key)})
            free = bool(got.scalar())
            if free:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:i)"), {"i": lock_id(key)})
            return free
    finally:
        engine.dispose()


class Children:
    """Child processes building one task each, released together through a go file."""

    def __init__(self, tasks_dir: Path, store: ll.ArtifactStore, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.runlog = tmp_path / "runs.log"
        self.ready = tmp_path / "ready"
        self.ready.mkdir(exist_ok=True)
        url = store.settings.database_url.render_as_string(hide_password=False)
        self.env = child_env(tasks_dir, url, Path(store.settings.storage_dir))
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, task: str, params: dict[str, Any], go: Path | None, **env: str) -> Any:
        err = self.tmp / f"child{len(self.procs)}.err"
        main = "import lock_tasks; lock_tasks.main()"
        argv = [task, json.dumps(params), str(self.ready), str(go or "-")]
        proc = subprocess.Popen(
            [sys.executable, "-c", main, *argv],
            env={**self.env, **env},
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=err.open("w"),
            text=True,
        )
        proc.err_path = err  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def together(self, count: int, task: str, params: dict[str, Any], **env: str) -> None:
        """``count`` children build ``task`` from a common start; all must succeed."""
        go = self.tmp / "go"
        started = [self.start(task, params, go, **env) for _ in range(count)]
        self.wait_for(lambda: len(list(self.ready.iterdir())) >= count, "children ready")
        go.touch()
        for proc in started:
            assert proc.wait(timeout=60) == 0, self.stderr(proc)

    def wait_for(self, condition: Any, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for proc in self.procs:
                assert proc.poll() in (None, 0), f"{what}: a child failed\n{self.stderr(proc)}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.01)

    @staticmethod
    def stderr(proc: Any) -> str:
        return str(proc.err_path.read_text())[-4000:]

    def runs(self, what: str = "run") -> list[tuple[str, int, float]]:
        """(task id, pid, time) of each noted run."""
        if not self.runlog.exists():
            return []
        lines = [line.split() for line in self.runlog.read_text().splitlines()]
        return [(t, int(p), float(s)) for w, t, p, s in lines if w == what]

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def children(tasks_dir: Path, store: ll.ArtifactStore, tmp_path: Path) -> Iterator[Children]:
    made = Children(tasks_dir, store, tmp_path)
    try:
        yield made
    finally:
        made.kill_all()


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_building_one_dag_run_each_task_once(
    processes: int, children: Children, db_url: str, tasks: ModuleType
) -> None:
    """2 or 4 builds of the same 20-task DAG at once: 20 runs in all, every build succeeds."""
    children.together(processes, "Top", {"n": 19}, LL_TEST_SLEEP="0.02")
    counted = Counter(task_id for task_id, _, _ in children.runs())
    assert len(counted) == 20
    assert set(counted.values()) == {1}, counted
    assert _scalar(db_url, "SELECT count(*) FROM lock_audit") >= 20  # the locks were taken
    assert _scalar(db_url, "SELECT count(*) FROM ll_task_locks") == 0  # and all released
    assert tasks.Top(n=19).output().load() == sum(range(19))


def test_task_lock_false_takes_no_lock(
    children: Children, db_url: str, luigi_cfg: Any, tasks: ModuleType
) -> None:
    """``task_lock = false`` (luigi.cfg): not one lock row written; both builds still succeed."""
    cfg = luigi_cfg("[artifact_store]\ntask_lock = false\n")
    children.together(2, "Top", {"n": 9}, LL_TEST_SLEEP="0.02", LUIGI_CONFIG_PATH=str(cfg))
    assert len({task_id for task_id, _, _ in children.runs()}) == 10
    assert _scalar(db_url, "SELECT count(*) FROM lock_audit") == 0


def test_a_killed_holder_frees_the_lock(children: Children, db_url: str) -> None:
    """SIGKILL the holder: PostgreSQL's waiter proceeds at once, SQLite's within the lease."""
    lease = {"LL_TEST_LEASE_S": str(LEASE_S)}
    holder = children.start("Slow", {"tag": "kill"}, None, LL_TEST_HOLD="120", **lease)
    children.wait_for(lambda: children.runs(), "the holder to start run()")
    waiter = children.start("Slow", {"tag": "kill"}, None, **lease)
    children.wait_for(lambda: "waiting for its task lock" in children.stderr(waiter), "a wait")
    sqlite = db_url.startswith("sqlite")
    time.sleep(LEASE_S * 1.5 if sqlite else 0.5)  # renewed: the holder keeps its lease
    assert len(children.runs()) == 1
    holder.send_signal(signal.SIGKILL)
    killed = time.time()
    assert waiter.wait(timeout=30) == 0, children.stderr(waiter)
    (_, holder_pid, _), (_, waiter_pid, took_over) = children.runs()
    assert (holder_pid, waiter_pid) == (holder.pid, waiter.pid)
    limit = LEASE_S + task_lock.MAX_POLL_S + 1.0 if sqlite else 2.0
    assert 0 < took_over - killed < limit
    told = children.stderr(waiter)
    assert told.count("waiting for its task lock") == 1, told
    assert f"pid {holder.pid}" in told


def test_the_wait_times_out_naming_the_holder(
    children: Children, db_url: str, tasks: ModuleType
) -> None:
    """``task_lock_timeout``: the waiting task fails with an error naming holder and setting."""
    holder = children.start("Slow", {"tag": "busy"}, None, LL_TEST_HOLD="120")
    children.wait_for(lambda: children.runs(), "the holder to start run()")
    ll.options.set("task_lock_timeout", "0.5")
    task = tasks.Slow(tag="busy")
    started = time.monotonic()
    with pytest.raises(ll.TaskLockTimeoutError) as caught:
        task.run()
    assert 0.5 <= time.monotonic() - started < 5
    message = str(caught.value)
    assert f"pid {holder.pid}" in message
    assert task.task_id in message and "task_lock_timeout" in message
    result = luigi.build([tasks.Slow(tag="busy")], local_scheduler=True, detailed_summary=True)
    assert not result.scheduling_succeeded or result.status.name != "SUCCESS"
    assert len(children.runs()) == 1  # only the holder ever ran it


def test_a_generator_run_holds_the_lock_across_its_yields(
    children: Children, db_url: str, tasks: ModuleType
) -> None:
    """Dynamic dependencies: locked while the generator runs; two builds finish it once."""
    run = tasks.Dynamic.run
    assert inspect.isgeneratorfunction(run) and run.__name__ == "run"
    assert run.__doc__ == "Sum the leaves it yields."

    class Probe(ll.ArtifactTaskMixin, luigi.Task):
        task_namespace = "locktest"

        def run(self) -> Iterator[Any]:
            yield tasks.Leaf(i=7)
            self.save(_lock_free(db_url, self.artifact_identity_key()))

    build([Probe()])
    assert Probe().output().load() is False  # the lock was held after the yield
    assert _lock_free(db_url, Probe().artifact_identity_key())

    children.together(2, "Dynamic", {"n": 4})
    finished = Counter(task_id for task_id, _, _ in children.runs())
    assert finished[tasks.Dynamic(n=4).task_id] == 1
    assert all(finished[tasks.Leaf(i=100 + i).task_id] == 1 for i in range(4)), finished
    assert tasks.Dynamic(n=4).output().load() == sum(range(100, 104))


def test_a_failed_run_releases_the_lock(
    children: Children, db_url: str, tasks: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run() that raises gives the lock up: the next process runs the task at once."""
    monkeypatch.setenv("LL_TEST_FAIL", "1")
    result = luigi.build([tasks.Flaky()], local_scheduler=True, detailed_summary=True)
    assert result.status.name != "SUCCESS"
    assert _lock_free(db_url, tasks.Flaky().artifact_identity_key())
    started = time.monotonic()
    retry = children.start("Flaky", {}, None)
    assert retry.wait(timeout=30) == 0, children.stderr(retry)
    assert time.monotonic() - started < task_lock.LEASE_S / 2  # no lease was left to expire
    assert [pid for _, pid, _ in children.runs()][1:] == [retry.pid]
    assert tasks.Flaky().complete()


def test_run_is_wrapped_once_and_super_run_does_not_wait_for_itself(
    store: ll.ArtifactStore, db_url: str, tasks: ModuleType, tmp_path: Path
) -> None:
    """A subclass calling ``super().run()`` runs under the one lock its own run() took."""

    class Inherits(tasks.Slow):  # type: ignore[misc,name-defined]
        pass

    class Extends(tasks.Slow):  # type: ignore[misc,name-defined]
        def run(self) -> None:
            super().run()

    assert Inherits.run is tasks.Slow.run
    assert task_lock.is_locked_run(Extends.run)
    ll.options.set("task_lock_timeout", "2")  # a second acquisition would wait, then fail
    build([Extends(tag="nested")])
    assert Extends(tag="nested").output().load() == "nested"
    assert _lock_free(db_url, Extends(tag="nested").artifact_identity_key())


def test_lock_ids_are_the_keys_first_16_hex_digits_signed() -> None:
    assert lock_id("0" * 64) == 0
    assert lock_id("7fffffffffffffff" + "0" * 48) == (1 << 63) - 1
    assert lock_id("8000000000000000" + "f" * 48) == -(1 << 63)
    assert lock_id("f" * 64) == -1
