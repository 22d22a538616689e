"""Luigi's task-history tables, declared on our one ``MetaData``.

Luigi's ``DbTaskHistory`` keeps ``tasks``, ``task_parameters`` and
``task_events``; we keep its table names, column names and types and its
indexes, so an existing Luigi history database works unchanged and Luigi's
web pages (which read these ORM objects) render from ours. Declaring them on
``schema.Base`` puts them in the project's one schema, made by its migrations
(``db.migrations``), and lets the store join artifacts to their runs.

Timestamps are naive local times, as Luigi writes them (``datetime.now()``);
changing that would break Luigi's own pages and existing databases.

This module must not import Luigi: the store reads these tables too.
"""

from __future__ import annotations

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
)
from sqlalchemy.engine import URL
from sqlalchemy.orm import Mapped, attribute_keyed_dict, mapped_column, relationship

from .schema import Base, metadata
from .setup import ensure_schema

#: Luigi's event names (``luigi.task_status``), repeated so the store need not import Luigi
PENDING = "PENDING"
RUNNING = "RUNNING"
DONE = "DONE"
FAILED = "FAILED"


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


def ensure_history_tables(url: URL) -> None:
    """Bring ``url``'s schema, history tables included, to the current revision.

    The tables belong to the project's one migration history (revision
    ``0002_luigi_history`` creates them, or adopts those Luigi made), so this
    is ``setup.ensure_schema``: once per process and database, under the
    migration lock, safe when several schedulers start at once. Raises
    ``DatabaseError`` or ``SchemaTooNewError``.
    """
    ensure_schema(url, doing="preparing the tables of Luigi's task history")
