"""What a value is: ``value_type`` and ``libraries`` on ``ll_artifacts``.

Both nullable: rows written before this revision (all of them cloudpickle
values) keep loading and simply record neither. Added only where absent: a
database made by ``create_all`` from today's models (before migrations, in
tests) already has them when it is adopted.

Revision ID: 0004_value_info
Revises: 0003_aliases
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_value_info"
down_revision = "0003_aliases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("ll_artifacts")}
    with op.batch_alter_table("ll_artifacts") as batch:
        if "value_type" not in existing:
            batch.add_column(sa.Column("value_type", sa.String(length=255), nullable=True))
        if "libraries" not in existing:
            batch.add_column(sa.Column("libraries", sa.JSON(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("linea_luigi migrations are forward only")
