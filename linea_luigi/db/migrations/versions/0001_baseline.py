"""Baseline: the artifact tables as ``metadata.create_all`` made them before migrations.

A database created before migrations existed is not run through this revision:
``runner.adopt`` stamps it (after bringing a schema-version-1 database's
``sha256`` column up to ``digest``), so its rows are never copied or recreated.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ll_artifacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.String(length=1024), nullable=False),
        sa.Column("serializer", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=80), nullable=False),
        sa.Column("python_version", sa.String(length=32), nullable=False),
        sa.Column("task_family", sa.String(length=255), nullable=True),
        sa.Column("task_id", sa.String(length=1024), nullable=True),
        sa.Column("identity_key", sa.String(length=64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ll_artifacts")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_ll_artifacts_name_version")),
    )
    op.create_index("ix_ll_artifacts_identity", "ll_artifacts", ["identity_key", "name", "version"])
    op.create_index("ix_ll_artifacts_location", "ll_artifacts", ["location"])
    op.create_table(
        "ll_lineage",
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["ll_artifacts.id"],
            name=op.f("fk_ll_lineage_child_id_ll_artifacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["ll_artifacts.id"],
            name=op.f("fk_ll_lineage_parent_id_ll_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", "parent_id", name=op.f("pk_ll_lineage")),
    )
    op.create_index("ix_ll_lineage_parent", "ll_lineage", ["parent_id", "child_id"])
    op.create_table(
        "ll_version_counters",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("next_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ll_version_counters")),
    )
    op.create_table(
        "ll_store_info",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=2048), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ll_store_info")),
    )


def downgrade() -> None:
    raise NotImplementedError("linea_luigi migrations are forward only")
