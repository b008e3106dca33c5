"""the index keeps blocks with transactions only; its cursor keeps the last block's hash

A QBFT chain seals a block every few seconds, and with ``emptyblockperiodseconds`` an empty one
every minute when idle: every node stored each of them (43,200 rows a day at 2 s). The indexer now
stores a block only when it holds transactions (and the deployment's first block), and the cursor
keeps the hash of the last block read, empty or not, to notice a chain that changed under it. The
empty blocks already stored are deleted.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 10:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("indexer_cursor") as batch:
        batch.add_column(sa.Column("last_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.execute(
        "UPDATE indexer_cursor SET last_hash = "
        "(SELECT hash FROM chain_block WHERE chain_block.number = indexer_cursor.next_block - 1)"
    )
    # the first block of the index (the deployment's, where it starts) is kept in any case
    op.execute(
        "DELETE FROM chain_block WHERE tx_count = 0 "
        "AND number > (SELECT min(number) FROM chain_block)"
    )


def downgrade() -> None:
    with op.batch_alter_table("indexer_cursor") as batch:
        batch.drop_column("last_hash")
