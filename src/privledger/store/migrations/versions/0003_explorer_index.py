"""explorer index: blocks, transactions, references

The indexed events are dropped with the cursor, so the indexer reads the chain again from the
deployment block and fills the new tables alongside them (the chain is the source of truth).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 11:45:36.066838
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_block",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("parent_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("timestamp", sa.Integer(), nullable=False),
        sa.Column("miner", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("gas_used", sa.Integer(), nullable=False),
        sa.Column("tx_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("chain_block", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_block_hash"), ["hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_chain_block_timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "chain_ref",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("chain_ref", schema=None) as batch_op:
        batch_op.create_index(
            "ix_chain_ref_lookup", ["kind", "value", "block_number"], unique=False
        )
        batch_op.create_index("ix_chain_ref_name", ["name", "kind", "value"], unique=False)
        batch_op.create_index(batch_op.f("ix_chain_ref_tx_hash"), ["tx_hash"], unique=False)

    op.create_table(
        "chain_tx",
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("to", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("nonce", sa.Integer(), nullable=False),
        sa.Column("value_wei", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("contract", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("function", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("gas_used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    with op.batch_alter_table("chain_tx", schema=None) as batch_op:
        batch_op.create_index("ix_chain_tx_position", ["block_number", "tx_index"], unique=True)
        batch_op.create_index(
            "ix_chain_tx_sender_position", ["sender", "block_number", "tx_index"], unique=False
        )
        batch_op.create_index(
            "ix_chain_tx_to_position", ["to", "block_number", "tx_index"], unique=False
        )

    op.execute("DELETE FROM chain_event")
    op.execute("DELETE FROM indexer_cursor")


def downgrade() -> None:
    with op.batch_alter_table("chain_tx", schema=None) as batch_op:
        batch_op.drop_index("ix_chain_tx_to_position")
        batch_op.drop_index("ix_chain_tx_sender_position")
        batch_op.drop_index("ix_chain_tx_position")

    op.drop_table("chain_tx")
    with op.batch_alter_table("chain_ref", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_ref_tx_hash"))
        batch_op.drop_index("ix_chain_ref_name")
        batch_op.drop_index("ix_chain_ref_lookup")

    op.drop_table("chain_ref")
    with op.batch_alter_table("chain_block", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_block_timestamp"))
        batch_op.drop_index(batch_op.f("ix_chain_block_hash"))

    op.drop_table("chain_block")
