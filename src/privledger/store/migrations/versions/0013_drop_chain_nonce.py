"""A node's API processes share nonces in shared memory, not in a table

Revision 0011 kept them in chain_nonce, a row per account locked FOR UPDATE around each
transaction: on a loaded machine the two round trips under the lock made two processes slower
than one (privledger.node.processes.ProcessNonces says why).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("chain_nonce")


def downgrade() -> None:
    op.create_table(
        "chain_nonce",
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column(
            "next_nonce", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.PrimaryKeyConstraint("address"),
    )
