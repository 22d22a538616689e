"""``TaskRun``: one run of a Luigi task, as the central scheduler's task history recorded it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class TaskRun:
    """One record of Luigi's task history (a row of ``tasks``) with its events.

    Luigi keeps one record per task per scheduler lifetime, so a task retried
    by the same scheduler has one record with several events. Times are UTC;
    Luigi records naive local times, read here in this process's time zone (as
    Luigi's own pages do). ``started_at is None`` means the task never ran in
    this record: a worker found it already complete.
    """

    #: Luigi's record id (``/history/by_id/<record_id>`` on the scheduler)
    record_id: int
    task_id: str | None
    family: str | None
    host: str | None
    #: the latest event: ``"PENDING"``, ``"RUNNING"``, ``"DONE"`` or ``"FAILED"``
    status: str | None
    #: first PENDING
    scheduled_at: datetime | None
    #: last RUNNING
    started_at: datetime | None
    #: last DONE
    finished_at: datetime | None
    #: last FAILED
    failed_at: datetime | None
    #: every ``(event_name, time)``, oldest first
    events: tuple[tuple[str, datetime], ...] = ()
    #: parameters as Luigi serialised them
    params: Mapping[str, str | None] = field(default_factory=dict)
