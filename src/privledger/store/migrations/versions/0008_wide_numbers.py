"""numbers as wide as their values: wei amounts up to 2^256, sizes and gas beyond 2^31

PostgreSQL's INTEGER is 32-bit, so a dataset's unit price of 10^12 wei, a result over 2 GiB or an
interop partnership expiring after 2038 did not fit. Wei amounts become NUMERIC(78, 0) there and
decimal text on SQLite (whose INTEGER is 64-bit, already wide enough for the other columns).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WEI_COLUMNS = (("local_dataset", "unit_price"), ("psi_service", "price_wei"))
WIDE_COLUMNS = (
    ("local_task", "result_size"),
    ("local_task", "bytes_sent"),
    ("chain_block", "timestamp"),
    ("chain_block", "gas_used"),
    ("chain_tx", "gas_used"),
    ("interop_contract", "expired_time"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in WEI_COLUMNS:
            op.alter_column(table, column, type_=sa.Numeric(78, 0), existing_type=sa.Integer())
        for table, column in WIDE_COLUMNS:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
        return
    for table, column in WEI_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(), existing_type=sa.Integer())


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, column in WEI_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column,
                type_=sa.Integer(),
                existing_type=sa.Numeric(78, 0) if postgresql else sa.String(),
                postgresql_using=f"{column}::integer",
            )
    if postgresql:
        for table, column in WIDE_COLUMNS:
            op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
