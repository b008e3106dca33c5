"""pipelines: a job document and what its runner reported of each step

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime
BIG_INTEGER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pipeline",
        sa.Column("pipeline_id", BIG_INTEGER, nullable=False),
        sa.Column("name", TEXT(), nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.Column("job_hash", TEXT(), nullable=False),
        sa.Column("created_by", TEXT(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("updated_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline_id"),
    )
    op.create_index(op.f("ix_pipeline_name"), "pipeline", ["name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pipeline_name"), table_name="pipeline")
    op.drop_table("pipeline")
