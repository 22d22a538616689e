"""Identical values stored once, and task locks: an index on ``digest``, ``ll_task_locks``.

Both only where absent: a database made by ``create_all`` from today's models
(before migrations, in tests) already has them when it is adopted.

Revision ID: 0005_shared_values
Revises: 0004_value_info
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_shared_values"
down_revision = "0004_value_info"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    indexes = {i["name"] for i in inspector.get_indexes("ll_artifacts")}
    if "ix_ll_artifacts_digest" not in indexes:
        op.create_index("ix_ll_artifacts_digest", "ll_artifacts", ["digest"])
    if not inspector.has_table("ll_task_locks"):
        op.create_table(
            "ll_task_locks",
            sa.Column("key", sa.String(length=64), nullable=False),
            sa.Column("holder", sa.String(length=255), nullable=False),
            sa.Column("task_id", sa.String(length=1024), nullable=True),
            sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("key", name=op.f("pk_ll_task_locks")),
            sqlite_with_rowid=False,  # as the model: one b-tree page per lease change
        )


def downgrade() -> None:
    raise NotImplementedError("linea_luigi migrations are forward only")
