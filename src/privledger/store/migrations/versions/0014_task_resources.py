"""the resources of a node's part in a task: CPU seconds, peak memory, bytes received

bytes_sent was already kept; privledger.node.usage says what each figure means.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BIG_INTEGER = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COLUMNS = (
    ("bytes_received", BIG_INTEGER),
    ("cpu_seconds", sa.Float()),
    ("peak_rss_bytes", BIG_INTEGER),
    ("usage_shared", sa.Boolean()),
)


def upgrade() -> None:
    with op.batch_alter_table("local_task") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("local_task") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
