"""onboarding applications and the interop API's partnerships and dataset authorisations

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TEXT = sqlmodel.sql.sqltypes.AutoString
WHEN = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "onboarding_application",
        sa.Column("id", TEXT(), nullable=False),
        sa.Column("secret_hash", TEXT(), nullable=False),
        sa.Column("org_name", TEXT(), nullable=False),
        sa.Column("contact_name", TEXT(), nullable=False),
        sa.Column("contact_email", TEXT(), nullable=False),
        sa.Column("admin_address", TEXT(), nullable=False),
        sa.Column("endpoint", TEXT(), nullable=False),
        sa.Column("node_key", TEXT(), nullable=False),
        sa.Column("roles", sa.Integer(), nullable=False),
        sa.Column("status", TEXT(), nullable=False),
        sa.Column("reason", TEXT(), nullable=True),
        sa.Column("reviewer", TEXT(), nullable=True),
        sa.Column("submitted_at", WHEN(), nullable=False),
        sa.Column("review_started_at", WHEN(), nullable=True),
        sa.Column("decided_at", WHEN(), nullable=True),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("tx_hashes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_onboarding_application_org_name"), "onboarding_application", ["org_name"]
    )
    op.create_index(op.f("ix_onboarding_application_status"), "onboarding_application", ["status"])
    op.create_table(
        "interop_contract",
        sa.Column("contract_id", TEXT(), nullable=False),
        sa.Column("applicant_org", sa.Integer(), nullable=False),
        sa.Column("partner_org", sa.Integer(), nullable=False),
        sa.Column("status", TEXT(), nullable=False),
        sa.Column("description", TEXT(), nullable=True),
        sa.Column("expired_time", sa.Integer(), nullable=True),
        sa.Column("anchor_batch_id", sa.Integer(), nullable=True),
        sa.Column("anchor_tx", TEXT(), nullable=True),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("updated_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("contract_id"),
    )
    op.create_table(
        "interop_dataset_audit",
        sa.Column("audit_id", TEXT(), nullable=False),
        sa.Column("contract_id", TEXT(), nullable=False),
        sa.Column("dataset_id", TEXT(), nullable=False),
        sa.Column("requester_org", sa.Integer(), nullable=False),
        sa.Column("owner_org", sa.Integer(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("time_limit", sa.Integer(), nullable=False),
        sa.Column("times_limit", sa.Integer(), nullable=False),
        sa.Column("status", TEXT(), nullable=False),
        sa.Column("grant_id", TEXT(), nullable=True),
        sa.Column("grantor", TEXT(), nullable=True),
        sa.Column("created_at", WHEN(), nullable=False),
        sa.Column("updated_at", WHEN(), nullable=False),
        sa.PrimaryKeyConstraint("audit_id"),
    )
    op.create_index(
        op.f("ix_interop_dataset_audit_contract_id"), "interop_dataset_audit", ["contract_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_interop_dataset_audit_contract_id"), "interop_dataset_audit")
    op.drop_table("interop_dataset_audit")
    op.drop_table("interop_contract")
    op.drop_index(op.f("ix_onboarding_application_status"), "onboarding_application")
    op.drop_index(op.f("ix_onboarding_application_org_name"), "onboarding_application")
    op.drop_table("onboarding_application")
