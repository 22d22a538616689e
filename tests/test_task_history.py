"""``ll.DbTaskHistory`` against real SQLite files and a real PostgreSQL.

The first group ports the cases of Luigi's own ``test/db_task_history_test.py``
(``DbTaskHistoryTest`` and the ``MySQLDbTaskHistoryTest`` timestamp cases),
run here on both databases; the rest covers what we add: URL normalisation,
the shared database, errors, the scheduler surviving a failing history and
concurrent first use.
"""

from __future__ import annotations

import ast
import logging
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import luigi
import luigi.scheduler
import luigi.task_status
import pytest
import sqlalchemy as sa
from luigi.parameter import ParameterVisibility
from luigi.server import from_utc
from luigi.task_status import DONE, FAILED, PENDING, RUNNING

import linea_luigi as ll
from linea_luigi.db import history_schema
from linea_luigi.db.engine import dispose_all

REPO = Path(__file__).resolve().parents[1]


class DummyTask(luigi.Task):
    foo = luigi.Parameter(default="foo")


class ParamTask(luigi.Task):
    param1 = luigi.Parameter()
    param2 = luigi.IntParameter(visibility=ParameterVisibility.HIDDEN)
    param3 = luigi.Parameter(default="empty", visibility=ParameterVisibility.PRIVATE)


def bare_postgresql(url: str) -> str:
    """``postgresql+psycopg2://…`` as the driverless URL users write in luigi.cfg."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(
    request: pytest.FixtureRequest, tmp_path: Path, luigi_cfg: Callable[[str], Path]
) -> str:
    """``[task_history] db_connection`` on a fresh SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    else:
        url = bare_postgresql(request.getfixturevalue("pg_url"))
    luigi_cfg(f"[task_history]\ndb_connection = {url}\n")
    return url


@pytest.fixture
def history(history_url: str) -> ll.DbTaskHistory:
    return ll.DbTaskHistory()


def scheduler_task(task: luigi.Task) -> Any:
    """The object Luigi's scheduler hands its task history."""
    return luigi.scheduler.Task(
        task.task_id,
        PENDING,
        [],
        family=task.task_family,
        params=task.param_kwargs,
        retry_policy=luigi.scheduler._get_empty_retry_policy(),
    )


def run_task(history: ll.DbTaskHistory, task: luigi.Task, host: str = "hostname") -> Any:
    """Scheduled, started on ``host``, finished: what the scheduler records for one run."""
    stask = scheduler_task(task)
    history.task_scheduled(stask)
    history.task_started(stask, host)
    history.task_finished(stask, successful=True)
    return stask


# -- Luigi's own test cases ------------------------------------------------------------


def test_task_list(history: ll.DbTaskHistory) -> None:
    run_task(history, DummyTask())
    run_task(history, DummyTask(foo="bar"))

    with history._session() as session:
        tasks = list(history.find_all_by_name("DummyTask", session))
        assert len(tasks) == 2
        for task in tasks:
            assert task.name == "DummyTask"
            assert task.host == "hostname"


def test_task_events(history: ll.DbTaskHistory) -> None:
    run_task(history, DummyTask())

    with history._session() as session:
        [task] = list(history.find_all_by_name("DummyTask", session))
        assert task.name == "DummyTask"
        assert [e.event_name for e in task.events] == [DONE, RUNNING, PENDING]


def test_task_by_params(history: ll.DbTaskHistory) -> None:
    task1 = ParamTask("foo", "bar")
    task2 = ParamTask("bar", "foo")

    with history._session() as session:
        run_task(history, task1)
        run_task(history, task2)
        found1 = history.find_all_by_parameters(
            task_name="ParamTask", session=session, param1="foo", param2="bar"
        )
        found2 = history.find_all_by_parameters(
            task_name="ParamTask", session=session, param1="bar", param2="foo"
        )
        for task, records in zip((task1, task2), (found1, found2), strict=True):
            [record] = list(records)
            assert record.name == task.task_family
            for name, value in task.param_kwargs.items():
                assert name in record.parameters
                assert record.parameters[name].value == str(value)


def test_task_blank_param(history: ll.DbTaskHistory) -> None:
    run_task(history, DummyTask(foo=""))

    with history._session() as session:
        [record] = list(history.find_all_by_name("DummyTask", session))
        assert (record.name, record.host) == ("DummyTask", "hostname")
        assert record.parameters["foo"].value == ""


def test_upgrade_schema_of_an_old_luigi_database(history_url: str) -> None:
    """Luigi's ``test_upgrade_schema``: tasks.task_id and its index are added if missing."""
    engine = sa.create_engine(ll.DbTaskHistory().url)
    serial = "SERIAL" if engine.dialect.name == "postgresql" else "INTEGER"
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"CREATE TABLE tasks (id {serial} PRIMARY KEY, name VARCHAR(128), host TEXT)")
        )
        conn.execute(
            sa.text(
                "CREATE TABLE task_parameters (task_id INTEGER, name VARCHAR(128), "
                "value VARCHAR(255), PRIMARY KEY (task_id, name))"
            )
        )

    history = ll.DbTaskHistory()
    history.ensure_schema()

    inspector = sa.inspect(engine)
    columns = {c["name"]: c["type"] for c in inspector.get_columns("tasks")}
    assert str(columns["task_id"]) == "VARCHAR(200)"
    assert "ix_task_id" in {i["name"] for i in inspector.get_indexes("tasks")}
    value_type = {c["name"]: c["type"] for c in inspector.get_columns("task_parameters")}["value"]
    if engine.dialect.name == "postgresql":
        assert isinstance(value_type, sa.Text)
    assert {"task_events"} <= set(inspector.get_table_names())
    engine.dispose()
    run_task(history, DummyTask())  # and the upgraded database records events
    [record] = list(history.find_all_by_name("DummyTask"))
    assert record.task_id == DummyTask().task_id


def test_subsecond_timestamp(history: ll.DbTaskHistory) -> None:
    """Luigi's MySQL case: events less than a second apart keep their order."""
    run_task(history, DummyTask())
    with history._session() as session:
        record = next(history.find_all_by_name("DummyTask", session))
        assert record.events[0].event_name == DONE


def test_utc_conversion(history: ll.DbTaskHistory) -> None:
    """Luigi's MySQL case: the server's ``from_utc`` parses the stored timestamps."""
    run_task(history, DummyTask())
    with history._session() as session:
        record = next(history.find_all_by_name("DummyTask", session))
        assert abs(from_utc(str(record.events[0].ts)) - time.time()) < 120


# -- our additions ---------------------------------------------------------------------


def test_results_are_fully_loaded_after_the_session_closes(history: ll.DbTaskHistory) -> None:
    """Luigi's /tasklist pages use results outside any session; so may anyone."""
    first = run_task(history, DummyTask())
    run_task(history, DummyTask(foo="bar"), host="other")

    older, _ = history.find_all_by_name("DummyTask")
    assert [e.event_name for e in older.events] == [DONE, RUNNING, PENDING]
    assert older.parameters["foo"].value == "foo"
    assert [t.host for t in history.find_latest_runs()] == ["other", "hostname"]
    assert [t.name for t in history.find_all_runs()] == ["DummyTask", "DummyTask"]
    assert len(history.find_all_events()) == 6

    by_id = history.find_task_by_id(str(history.tasks[first.id].record_id))
    assert by_id is not None and by_id.task_id == DummyTask().task_id
    assert [e.event_name for e in by_id.events] == [DONE, RUNNING, PENDING]
    by_task_id = history.find_task_by_task_id(DummyTask(foo="bar").task_id)
    assert by_task_id is not None and by_task_id.host == "other"
    assert history.find_task_by_id("nope") is None
    record_id = history.tasks[first.id].record_id
    assert record_id < 10  # so the Unicode digit below would name it, if it were read
    for not_an_id in (chr(0x0660 + record_id), "9" * 20, str(2**31), "-1", f" {record_id}"):
        assert history.find_task_by_id(not_an_id) is None, not_an_id  # never int()'s reading
    assert history.find_task_by_task_id("NoSuchTask__99914b932b") is None
    assert list(history.find_all_by_parameters("DummyTask", foo="nope")) == []


def test_a_retried_task_is_one_record_as_in_luigi(history: ll.DbTaskHistory) -> None:
    """One record per task per scheduler lifetime; a retry appends events to it."""
    stask = scheduler_task(DummyTask())
    history.task_scheduled(stask)
    history.task_started(stask, "h1")
    history.task_finished(stask, successful=False)
    history.task_scheduled(stask)
    history.task_started(stask, "h2")
    history.task_finished(stask, successful=True)

    [record] = history.find_all_runs()
    assert record.host == "h2"
    assert [e.event_name for e in reversed(record.events)] == [
        PENDING,
        RUNNING,
        FAILED,
        PENDING,
        RUNNING,
        DONE,
    ]


def test_a_record_deleted_behind_the_scheduler_is_recreated(history: ll.DbTaskHistory) -> None:
    stask = scheduler_task(DummyTask())
    history.task_scheduled(stask)
    with history.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM task_events"))
        conn.execute(sa.text("DELETE FROM task_parameters"))
        conn.execute(sa.text("DELETE FROM tasks"))
    history.task_started(stask, "hostname")

    [record] = history.find_all_runs()
    assert [e.event_name for e in record.events] == [RUNNING]
    assert record.parameters["foo"].value == "foo"


def test_postgres_scheme_is_accepted(pg_url: str, luigi_cfg: Callable[[str], Path]) -> None:
    """``postgres://`` has no SQLAlchemy dialect; Luigi's history fails on it."""
    url = pg_url.replace("postgresql+psycopg2://", "postgres://", 1)
    luigi_cfg(f"[task_history]\ndb_connection = {url}\n")
    history = ll.DbTaskHistory()
    assert history.url.drivername == "postgresql+psycopg2"
    run_task(history, DummyTask())
    assert [t.name for t in history.find_all_runs()] == ["DummyTask"]


def test_without_db_connection_history_shares_the_artifact_database(
    store: ll.ArtifactStore, sqlite_url: str
) -> None:
    """No ``[task_history] db_connection``: history and artifacts share one database."""
    ll.options.set("database_url", sqlite_url)
    history = ll.DbTaskHistory()
    assert history.url == store.settings.database_url

    store.save(1, "x")  # the store's schema creation makes the history tables too
    assert {"tasks", "task_events", "task_parameters"} <= set(
        sa.inspect(history.engine).get_table_names()
    )
    run_task(history, DummyTask())
    assert len(history.find_all_events()) == 3
    assert store.load("x") == 1


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unreachable_history(luigi_cfg: Callable[[str], Path]) -> ll.DbTaskHistory:
    url = f"postgresql://postgres:s3cret@127.0.0.1:{unused_port()}/nothing"
    luigi_cfg(f"[task_history]\ndb_connection = {url}\n")
    return ll.DbTaskHistory()


def test_database_errors_are_ours_with_the_password_masked(
    luigi_cfg: Callable[[str], Path],
) -> None:
    history = unreachable_history(luigi_cfg)
    assert "s3cret" not in repr(history)
    with pytest.raises(ll.DatabaseError) as err:
        history.task_scheduled(scheduler_task(DummyTask()))
    assert "s3cret" not in str(err.value)
    assert "postgres:***@127.0.0.1" in str(err.value)
    with pytest.raises(ll.DatabaseError, match="task history"):
        history.find_all_runs()


def test_a_bad_url_is_a_config_error(luigi_cfg: Callable[[str], Path]) -> None:
    luigi_cfg("[task_history]\ndb_connection = not a url\n")
    with pytest.raises(ll.ConfigError, match="Cannot parse database URL"):
        ll.DbTaskHistory()


def test_the_scheduler_keeps_scheduling_when_history_fails(
    luigi_cfg: Callable[[str], Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Luigi's scheduler catches history exceptions, so events are lost but work goes on."""
    history = unreachable_history(luigi_cfg)
    scheduler = luigi.scheduler.Scheduler(task_history_impl=history)
    task_id = DummyTask().task_id
    with caplog.at_level(logging.WARNING):
        scheduler.add_task(worker="w", task_id=task_id, status=PENDING, family="DummyTask")
        work = scheduler.get_work(worker="w", host="h")
        scheduler.add_task(worker="w", task_id=task_id, status=DONE, family="DummyTask")
    assert work["task_id"] == task_id
    assert scheduler.task_list(DONE, "")[task_id]["status"] == DONE
    assert "Error saving Task history" in caplog.text
    assert "s3cret" not in caplog.text


def _create_tables(url: str, barrier: Any) -> None:
    barrier.wait()
    ll.DbTaskHistory().ensure_schema()


def test_concurrent_first_use_creates_the_tables_once(history_url: str) -> None:
    """Several schedulers starting at once on an empty database all succeed."""
    dispose_all()  # no pooled connection may cross the fork
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_create_tables, args=(history_url, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    history = ll.DbTaskHistory()
    run_task(history, DummyTask())
    assert len(history.find_all_events()) == 3


def test_event_names_are_luigis() -> None:
    assert (history_schema.PENDING, history_schema.RUNNING) == (PENDING, RUNNING)
    assert (history_schema.DONE, history_schema.FAILED) == (DONE, FAILED)


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.MovedIn20Warning")
def test_the_history_tables_match_luigis_definitions() -> None:
    """Same tables, columns, types, keys and indexes as luigi.db_task_history."""
    ours = {t.name: t for t in history_schema.HISTORY_TABLES}
    theirs = _luigi_tables()
    assert set(ours) == set(theirs)
    for name, table in theirs.items():
        mine = ours[name]
        assert [c.name for c in mine.columns] == [c.name for c in table.columns], name
        for col in table.columns:
            other = mine.columns[col.name]
            assert repr(other.type) == repr(col.type), (name, col.name)
            assert other.primary_key == col.primary_key, (name, col.name)
            assert other.nullable == col.nullable, (name, col.name)
            assert bool(other.index) == bool(col.index), (name, col.name)
            assert {fk.target_fullname for fk in other.foreign_keys} == {
                fk.target_fullname for fk in col.foreign_keys
            }


def _luigi_tables() -> dict[str, sa.Table]:
    """Luigi's table definitions (its module imports fine; only its constructor fails)."""
    import luigi.db_task_history as luigi_history

    return {
        name: luigi_history.Base.metadata.tables[name]
        for name in ("tasks", "task_events", "task_parameters")
    }


@pytest.mark.parametrize(
    "module",
    [
        "linea_luigi/db/history_schema.py",
        "linea_luigi/db/queries/history.py",
        "linea_luigi/model.py",
    ],
)
def test_store_side_modules_do_not_import_luigi(module: str) -> None:
    """The store reads the history tables; it must never need Luigi."""
    tree = ast.parse((REPO / module).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] == "luigi"}


@pytest.fixture(autouse=True)
def _no_leaked_engines() -> Iterator[None]:
    yield
    dispose_all()
