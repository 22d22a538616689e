"""Luigi's task history tables: created where absent, adopted where Luigi made them.

Luigi's ``DbTaskHistory`` (or ours, before migrations) may already have
created ``tasks``, ``task_parameters`` and ``task_events``, with rows worth
keeping; a table that exists is adopted, never recreated. Tables made by an old
Luigi get the two upgrades Luigi's own ``_upgrade_schema`` applies: the
``tasks.task_id`` column with its index ``ix_task_id``, and (PostgreSQL only;
SQLite ignores VARCHAR lengths) a TEXT ``task_parameters.value``.

Names are PostgreSQL's defaults, which a database Luigi created carries.

Revision ID: 0002_luigi_history
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_luigi_history"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    if "tasks" in existing:
        _adopt_tasks(bind)
    else:
        op.create_table(
            "tasks",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("task_id", sa.String(length=200), nullable=True),
            sa.Column("name", sa.String(length=128), nullable=True),
            sa.Column("host", sa.String(length=128), nullable=True),
            sa.PrimaryKeyConstraint("id", name="tasks_pkey"),
        )
        op.create_index("ix_tasks_name", "tasks", ["name"])
        op.create_index("ix_tasks_task_id", "tasks", ["task_id"])
    if "task_parameters" in existing:
        _adopt_task_parameters(bind)
    else:
        op.create_table(
            "task_parameters",
            sa.Column("task_id", sa.Integer(), nullable=False),
            sa.Column("name", sa.String(length=128), nullable=False),
            sa.Column("value", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="task_parameters_task_id_fkey"),
            sa.PrimaryKeyConstraint("task_id", "name", name="task_parameters_pkey"),
        )
    if "task_events" not in existing:
        op.create_table(
            "task_events",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("task_id", sa.Integer(), nullable=True),
            sa.Column("event_name", sa.String(length=20), nullable=True),
            sa.Column("ts", sa.TIMESTAMP(), nullable=False),
            sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="task_events_task_id_fkey"),
            sa.PrimaryKeyConstraint("id", name="task_events_pkey"),
        )
        op.create_index("ix_task_events_task_id", "task_events", ["task_id"])
        op.create_index("ix_task_events_ts", "task_events", ["ts"])


def _adopt_tasks(bind: sa.Connection) -> None:
    """An old Luigi's ``tasks`` has no ``task_id``: add it as Luigi's upgrade does."""
    columns = {c["name"] for c in sa.inspect(bind).get_columns("tasks")}
    if "task_id" not in columns:
        op.add_column("tasks", sa.Column("task_id", sa.String(length=200), nullable=True))
        op.create_index("ix_task_id", "tasks", ["task_id"])


def _adopt_task_parameters(bind: sa.Connection) -> None:
    """An old Luigi's ``task_parameters.value`` is a VARCHAR(255); long values need TEXT."""
    if bind.dialect.name != "postgresql":
        return
    value = next(c for c in sa.inspect(bind).get_columns("task_parameters") if c["name"] == "value")
    if not isinstance(value["type"], sa.Text):
        op.alter_column("task_parameters", "value", type_=sa.Text(), existing_nullable=True)


def downgrade() -> None:
    raise NotImplementedError("linea_luigi migrations are forward only")
