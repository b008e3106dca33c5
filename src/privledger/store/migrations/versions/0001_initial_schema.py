"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27 10:03:43.688024
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_user_name"), ["name"], unique=True)

    op.create_table(
        "chain_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("block_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("contract", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_chain_event_log"),
    )
    with op.batch_alter_table("chain_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_chain_event_block_number"), ["block_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_chain_event_contract"), ["contract"], unique=False)
        batch_op.create_index(batch_op.f("ix_chain_event_event"), ["event"], unique=False)
        batch_op.create_index(batch_op.f("ix_chain_event_tx_hash"), ["tx_hash"], unique=False)

    op.create_table(
        "indexer_cursor",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("next_block", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "local_dataset",
        sa.Column("dataset_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("schema_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("commitment", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("salt", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id"),
    )
    op.create_table(
        "local_task",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("spec_json", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("spec_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("failure", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("salt", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("result_path", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("result_size", sa.Integer(), nullable=True),
        sa.Column("result_digest", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("transcript_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("protocol_seconds", sa.Float(), nullable=True),
        sa.Column("bytes_sent", sa.Integer(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    with op.batch_alter_table("local_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_local_task_state"), ["state"], unique=False)

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["api_user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_token_hash"), ["token_hash"], unique=True)
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))
        batch_op.drop_index(batch_op.f("ix_api_token_token_hash"))

    op.drop_table("api_token")
    with op.batch_alter_table("local_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_local_task_state"))

    op.drop_table("local_task")
    op.drop_table("local_dataset")
    op.drop_table("indexer_cursor")
    with op.batch_alter_table("chain_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_event_tx_hash"))
        batch_op.drop_index(batch_op.f("ix_chain_event_event"))
        batch_op.drop_index(batch_op.f("ix_chain_event_contract"))
        batch_op.drop_index(batch_op.f("ix_chain_event_block_number"))

    op.drop_table("chain_event")
    with op.batch_alter_table("api_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_user_name"))

    op.drop_table("api_user")
