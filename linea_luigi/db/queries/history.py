"""Join artifacts to the runs in Luigi's task history (same database, no scheduler needed).

An artifact records the ``task_id`` of the Luigi task that saved it; the
history records every run of a ``task_id``. A run *made* an artifact when the
artifact has the run's ``task_id`` and was created while the run was running:
after its first RUNNING event and before its last DONE/FAILED one (the
scheduler records RUNNING before the worker starts and DONE after it reports).
The two clocks are the worker's (``created_at``, UTC) and the scheduler's
(event times, naive local, read in this process's zone), so the window is
widened by ``slack`` for clock skew, but never into another run of the task.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import Connection, Select, Table, bindparam, false, select
from sqlalchemy.orm import Session

from ...model import TaskRun
from ..history_schema import DONE, FAILED, PENDING, RUNNING, TaskEvent, TaskRecord
from ..schema import ArtifactRow

#: allowed skew between the scheduler's and the workers' clocks
DEFAULT_SLACK = timedelta(seconds=2)


_ARTIFACTS = cast(Table, ArtifactRow.__table__)


def runs_of_task(conn: Connection, task_id: str | None) -> list[TaskRun]:
    """Every recorded run of ``task_id``, oldest first (none for ``None``).

    Reads through an ORM session joined to ``conn``'s transaction, so the
    caller's transaction and retry handling apply.
    """
    if task_id is None:
        return []
    q = select(TaskRecord).where(TaskRecord.task_id == task_id).order_by(TaskRecord.id)
    with Session(bind=conn) as session:
        return [to_task_run(r) for r in session.scalars(q)]


def to_task_run(record: TaskRecord) -> TaskRun:
    """A plain value from an ORM record (events and parameters must be loaded)."""
    events = sorted(((e.ts, e.id), e.event_name or "") for e in record.events)
    timeline = tuple((name, _utc(ts)) for (ts, _), name in events)

    def times(name: str) -> list[datetime | None]:
        return [ts for event, ts in timeline if event == name] or [None]

    return TaskRun(
        record_id=record.id,
        task_id=record.task_id,
        family=record.name,
        host=record.host,
        status=timeline[-1][0] if timeline else None,
        scheduled_at=times(PENDING)[0],
        started_at=times(RUNNING)[-1],
        finished_at=times(DONE)[-1],
        failed_at=times(FAILED)[-1],
        events=timeline,
        params={name: p.value for name, p in sorted(record.parameters.items())},
    )


def artifacts_of_run_query(
    conn: Connection, run: TaskRun, slack: timedelta = DEFAULT_SLACK
) -> Select[Any]:
    """Rows of ``ll_artifacts`` that ``run`` saved, by name and version (Core select).

    The window is ``run``'s first RUNNING to its last DONE/FAILED event (open
    while it runs), widened by ``slack`` but never past an event of another
    run of the same task, so each artifact belongs to one run at most.
    A run that never started made nothing.
    """
    a = _ARTIFACTS.c
    started = [ts for name, ts in run.events if name == RUNNING]
    if run.task_id is None or not started:
        return select(_ARTIFACTS).where(false())
    begin = started[0]
    ends = [ts for name, ts in run.events if name in (DONE, FAILED) and ts >= begin]
    end = ends[-1] if ends else None
    others = [
        _utc(ts) for ts in conn.scalars(_OTHER_EVENTS, {"t": run.task_id, "r": run.record_id})
    ]
    low = max([begin - slack, *(ts for ts in others if ts <= begin)])
    highs = [ts for ts in others if ts >= (end or begin)]
    if end is not None:
        highs.append(end + slack)
    q = select(_ARTIFACTS).where(a.task_id == run.task_id, a.created_at >= low)
    if highs:
        q = q.where(a.created_at <= min(highs))
    return q.order_by(a.name, a.version)


#: event times of the other runs of a task
_OTHER_EVENTS = (
    select(TaskEvent.ts)
    .join(TaskRecord, TaskEvent.task_id == TaskRecord.id)
    .where(TaskRecord.task_id == bindparam("t"), TaskRecord.id != bindparam("r"))
)


def _utc(ts: datetime) -> datetime:
    """Luigi's naive local time (or an aware one) as an aware UTC time."""
    return ts.astimezone(timezone.utc)
