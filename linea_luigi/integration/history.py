"""``DbTaskHistory``: Luigi's task history on SQLAlchemy 2, in the artifact database.

A drop-in for ``luigi.db_task_history.DbTaskHistory``, which fails on
SQLAlchemy 2.1 (luigi #3227, #3320): a bare ``postgresql://`` picks psycopg 3,
``postgres://`` has no dialect, and on SQLite ``_upgrade_schema`` executes raw
strings. Ours keeps Luigi's tables (``db.history_schema``), its recording
semantics and the query methods Luigi's ``/history`` and ``/tasklist`` pages
call, and differs where it has to:

- URLs are normalised like the store's (``postgres://`` and bare
  ``postgresql://`` use psycopg2); without ``[task_history] db_connection`` the
  history goes to linea_luigi's database, so runs and artifacts can be joined;
- engines are our per-process ones (SQLite WAL, busy timeout, write lock
  taken at BEGIN); the schema, history tables included, is migrated on first
  use under a lock (``db.migrations``), and an existing Luigi history is adopted;
- query results are fully loaded before they are returned, so they can be
  used after their session closes (Luigi's leaked an open session instead);
- database failures raise ``DatabaseError`` with the password masked. The
  scheduler catches and logs every exception of a history call
  (``Scheduler._update_task_history``), so a failing history never stops
  scheduling; it only loses those events.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import luigi.configuration
from luigi.task_history import StoredTask, TaskHistory
from luigi.task_status import DONE, FAILED, PENDING, RUNNING
from sqlalchemy import exc, func, select, update
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, aliased, sessionmaker

from ..db.engine import get_engine, transact, translate
from ..db.history_schema import TaskEvent, TaskParameter, TaskRecord, ensure_history_tables
from ..errors import InvalidArgumentError
from ..names import parse_count
from ..settings import resolve_settings
from ..settings.urls import mask_secrets, parse_db_url

log = logging.getLogger(__name__)

SECTION = "task_history"
#: the largest task record id (an Integer column: int4 on PostgreSQL)
MAX_RECORD_ID = 2**31 - 1


def history_url() -> URL:
    """``[task_history] db_connection``, else linea_luigi's database (see ``settings.resolve``)."""
    raw = luigi.configuration.get_config().get(SECTION, "db_connection", None)  # type: ignore[no-untyped-call]
    if raw is not None and str(raw).strip():
        return parse_db_url(str(raw))
    return resolve_settings().database_url


class DbTaskHistory(TaskHistory):
    """Task history in a SQL database, with the queries Luigi's web pages use."""

    def __init__(self) -> None:
        self.url = history_url()
        get_engine(self.url)  # a missing driver fails here, not at the first event
        #: Luigi's cache: scheduler task id -> StoredTask (holds the record id)
        self.tasks: dict[str, StoredTask] = {}

    @property
    def engine(self) -> Engine:
        """This process's engine (looked up per process, so the history survives a fork)."""
        return get_engine(self.url)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions as Luigi's history made them: objects stay usable after commit."""
        return sessionmaker(bind=self.engine, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"DbTaskHistory({mask_secrets(self.url)!r})"

    def ensure_schema(self) -> None:
        """Migrate the schema, history tables included, now (otherwise done at first use)."""
        ensure_history_tables(self.url)

    # -- recording (called by the scheduler) ---------------------------------------

    def task_scheduled(self, task: Any) -> None:
        self._record(task, PENDING)

    def task_started(self, task: Any, worker_host: str | None) -> None:
        self._record(task, RUNNING, worker_host)

    def task_finished(self, task: Any, successful: bool) -> None:
        self._record(task, DONE if successful else FAILED)

    def _record(self, task: Any, status: str, host: str | None = None) -> None:
        """Add one event; the first event of a task creates its record with its parameters."""
        stored = self.tasks.get(task.id)
        if stored is None:
            stored = self.tasks[task.id] = StoredTask(task, status, host)  # type: ignore[no-untyped-call]
        else:
            stored.status = status
            if host:
                stored.host = host
        ensure_history_tables(self.url)
        stored.record_id = transact(
            self.url,
            lambda session: _write_event(session, stored, status, host),
            write=True,
            doing=f"recording {status} of task {task.id} in Luigi's task history",
        )

    # -- queries (called by Luigi's server) --------------------------------------

    @contextmanager
    def _session(self, session: Session | None = None) -> Iterator[Session]:
        """The given session, or a new one committed (or rolled back) and closed on exit."""
        if session is not None:
            yield session
            return
        ensure_history_tables(self.url)
        new = self.session_factory()
        try:
            yield new
            new.commit()
        except exc.SQLAlchemyError as err:
            new.rollback()
            raise translate(err, self.url, "reading Luigi's task history") from None
        except BaseException:
            new.rollback()
            raise
        finally:
            new.close()

    def find_all_by_parameters(
        self, task_name: str, session: Session | None = None, **task_params: Any
    ) -> Iterator[TaskRecord]:
        """Records of ``task_name`` whose parameters equal ``task_params``, oldest first."""
        q = select(TaskRecord).join(TaskRecord.events).where(TaskRecord.name == task_name)
        for name, value in task_params.items():
            param = aliased(TaskParameter)
            q = q.join(param, param.task_id == TaskRecord.id).where(
                param.name == name, param.value == str(value)
            )
        q = q.group_by(TaskRecord.id).order_by(func.min(TaskEvent.ts), TaskRecord.id)
        with self._session(session) as s:
            return iter(list(s.scalars(q)))

    def find_all_by_name(
        self, task_name: str, session: Session | None = None
    ) -> Iterator[TaskRecord]:
        """Every record of ``task_name``, oldest first."""
        return self.find_all_by_parameters(task_name, session)

    def find_latest_runs(self, session: Session | None = None) -> list[TaskRecord]:
        """Records with an event in the past 24 hours, most recently updated first."""
        since = datetime.now() - timedelta(days=1)
        q = (
            select(TaskRecord)
            .join(TaskRecord.events)
            .where(TaskEvent.ts >= since)
            .group_by(TaskRecord.id)
            .order_by(func.max(TaskEvent.ts).desc(), TaskRecord.id.desc())
        )
        with self._session(session) as s:
            return list(s.scalars(q))

    def find_all_runs(self, session: Session | None = None) -> list[TaskRecord]:
        """Every record."""
        with self._session(session) as s:
            return list(s.scalars(select(TaskRecord).order_by(TaskRecord.id)))

    def find_all_events(self, session: Session | None = None) -> list[TaskEvent]:
        """Every event."""
        with self._session(session) as s:
            return list(s.scalars(select(TaskEvent).order_by(TaskEvent.id)))

    def find_task_by_id(self, id: int | str, session: Session | None = None) -> TaskRecord | None:
        """The record with this record id (``None`` if there is none, or no such id can be).

        ``id`` comes from Luigi's ``/history/by_id/<id>`` URL: only ASCII digits
        within the column's range are looked up (``int('٣')`` is 3, and a
        20-digit id overflows SQLite's driver).
        """
        try:
            record_id = parse_count(id, "record id", maximum=MAX_RECORD_ID)
        except InvalidArgumentError:
            return None
        with self._session(session) as s:
            return s.get(TaskRecord, record_id)

    def find_task_by_task_id(
        self, task_id: str, session: Session | None = None
    ) -> TaskRecord | None:
        """The latest record of this Luigi task id (``None`` if there is none)."""
        q = select(TaskRecord).where(TaskRecord.task_id == task_id)
        with self._session(session) as s:
            return s.scalars(q.order_by(TaskRecord.id.desc()).limit(1)).first()


def _write_event(session: Session, stored: StoredTask, status: str, host: str | None) -> int:
    """Insert one event, creating the record first if needed; return the record id.

    Inserts the event row directly instead of loading the record and its
    events: one statement per event however long a task's history grows.
    """
    record_id = stored.record_id
    exists = select(TaskRecord.id).where(TaskRecord.id == record_id)
    if record_id is not None and session.scalar(exists) is None:
        log.warning(
            "Luigi task history record %s of %s vanished; starting a new one",
            record_id,
            stored._task.id,
        )
        record_id = None
    if record_id is None:
        record = TaskRecord(task_id=stored._task.id, name=stored.task_family, host=stored.host)
        for name, value in stored.parameters.items():
            text = None if value is None else str(value)
            record.parameters[name] = TaskParameter(name=name, value=text)
        session.add(record)
        session.flush()
        record_id = record.id
    elif host:
        session.execute(update(TaskRecord).where(TaskRecord.id == record_id).values(host=host))
    session.add(TaskEvent(task_id=record_id, event_name=status, ts=datetime.now()))
    return record_id
