"""Aliases: movable labels on versions (``ll_aliases``).

Created only where absent: a database made by ``create_all`` from today's
models (before migrations, in tests) already has it when it is adopted.

Revision ID: 0003_aliases
Revises: 0002_luigi_history
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_aliases"
down_revision = "0002_luigi_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("ll_aliases"):
        return
    op.create_table(
        "ll_aliases",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name=op.f("pk_ll_aliases")),
    )
    op.create_index("ix_ll_aliases_version", "ll_aliases", ["name", "version"])


def downgrade() -> None:
    raise NotImplementedError("linea_luigi migrations are forward only")
