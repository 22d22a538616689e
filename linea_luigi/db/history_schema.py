"""Luigi's task-history tables, declared on our one ``MetaData``.

Luigi's ``DbTaskHistory`` keeps ``tasks``, ``task_parameters`` and
``task_events``; we keep its table names, column names and types and its
indexes, so an existing Luigi history database works unchanged and Luigi's
web pages (which read these ORM objects) render from ours. Declaring them on
``schema.Base`` lets one ``metadata.create_all`` make the artifact and the
history tables, and lets the store join artifacts to their runs.

Timestamps are naive local times, as Luigi writes them (``datetime.now()``);
changing that would break Luigi's own pages and existing databases.

This module must not import Luigi: the store reads these tables too.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import (
    TIMESTAMP,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.engine import URL, Connection
from sqlalchemy.orm import Mapped, Session, attribute_keyed_dict, mapped_column, relationship

from .engine import transact
from .schema import Base, metadata

#: Luigi's event names (``luigi.task_status``), repeated so the store need not import Luigi
PENDING = "PENDING"
RUNNING = "RUNNING"
DONE = "DONE"
FAILED = "FAILED"

#: the advisory lock of ``setup`` (its ``create_all`` makes these tables too), repeated
#: rather than imported so that ``setup`` may import this module
PG_SETUP_LOCK = 0x11EA_1061


class TaskRecord(Base):
    """One task as seen by one scheduler: Luigi's ``tasks`` row.

    ``parameters`` is keyed by parameter name and ``events`` is newest first,
    exactly as Luigi's templates expect (``task.events[0]`` is the latest).
    """

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(200), index=True)
    name: Mapped[str | None] = mapped_column(String(128), index=True)
    host: Mapped[str | None] = mapped_column(String(128))

    parameters: Mapped[dict[str, TaskParameter]] = relationship(
        collection_class=attribute_keyed_dict("name"),
        cascade="all, delete-orphan",
        lazy="selectin",
    )
    events: Mapped[list[TaskEvent]] = relationship(
        back_populates="task",
        order_by=lambda: (TaskEvent.ts.desc(), TaskEvent.id.desc()),
        lazy="selectin",
    )

    # explicit names: PostgreSQL's defaults, which a database Luigi created carries
    __table_args__ = (PrimaryKeyConstraint("id", name="tasks_pkey"),)

    def __repr__(self) -> str:
        return f"TaskRecord(name={self.name}, host={self.host})"


class TaskParameter(Base):
    """One parameter of a task record, its value as Luigi serialised it (text)."""

    __tablename__ = "task_parameters"

    task_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        PrimaryKeyConstraint("task_id", "name", name="task_parameters_pkey"),
        ForeignKeyConstraint(["task_id"], ["tasks.id"], name="task_parameters_task_id_fkey"),
    )

    def __repr__(self) -> str:
        return f"TaskParameter(task_id={self.task_id}, name={self.name}, value={self.value})"


class TaskEvent(Base):
    """A status change of a task record: PENDING, RUNNING, DONE or FAILED, with its time."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("tasks.id", name="task_events_task_id_fkey"), index=True
    )
    event_name: Mapped[str | None] = mapped_column(String(20))
    ts: Mapped[datetime] = mapped_column(TIMESTAMP, index=True, nullable=False)

    task: Mapped[TaskRecord | None] = relationship(back_populates="events")

    __table_args__ = (PrimaryKeyConstraint("id", name="task_events_pkey"),)

    def __repr__(self) -> str:
        return f"TaskEvent(task_id={self.task_id}, event_name={self.event_name}, ts={self.ts})"


HISTORY_TABLES: list[Table] = [
    metadata.tables["tasks"],
    metadata.tables["task_parameters"],
    metadata.tables["task_events"],
]

_ready: set[str] = set()
_ready_lock = threading.Lock()


def ensure_history_tables(url: URL) -> None:
    """Create the history tables if missing, once per process and database.

    The one place history tables are created (Alembic will replace it). Safe
    when several schedulers start at once: PostgreSQL serialises on an advisory
    lock, SQLite on its write lock. Raises ``DatabaseError``.
    """
    key = url.render_as_string(hide_password=False)
    if key in _ready:
        return
    with _ready_lock:
        if key not in _ready:
            transact(url, _create, write=True, doing="creating Luigi's task history tables")
            _ready.add(key)


def _create(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_SETUP_LOCK})
    metadata.create_all(conn, tables=HISTORY_TABLES, checkfirst=True)
    _upgrade_legacy(conn)


def _upgrade_legacy(conn: Connection) -> None:
    """Bring a history database made by an old Luigi up to today's columns.

    Old Luigi versions had no ``tasks.task_id`` and a VARCHAR
    ``task_parameters.value``; Luigi's own ``_upgrade_schema`` does the same
    two steps (SQLite needs no type change: it does not enforce VARCHAR lengths).
    """
    columns = {c["name"]: c for c in inspect(conn).get_columns("tasks")}
    if "task_id" not in columns:
        conn.execute(text("ALTER TABLE tasks ADD COLUMN task_id VARCHAR(200)"))
        conn.execute(text("CREATE INDEX ix_task_id ON tasks (task_id)"))
    if conn.dialect.name == "postgresql":
        value = next(
            c for c in inspect(conn).get_columns("task_parameters") if c["name"] == "value"
        )
        if not isinstance(value["type"], Text):
            conn.execute(text("ALTER TABLE task_parameters ALTER COLUMN value TYPE TEXT"))
