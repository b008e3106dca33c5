"""Onboarding (F16): an organisation's application to join the consortium and its review."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from privledger.wire.body import Reply

RoleName = Literal["data_owner", "operator", "auditor"]


class ApplicationCreated(Reply):
    application_id: str
    tracking_secret: str = Field(description="shown once: send it as X-Tracking-Secret to track")
    status: str


class ApplicationStatus(Reply):
    application_id: str
    org_name: str
    status: Literal["submitted", "under_review", "approved", "rejected", "expired"]
    submitted_at: datetime
    review_started_at: datetime | None
    decided_at: datetime | None
    reason: str | None
    org_id: int | None = Field(description="the organisation's id on chain, once registered")
    tx_hashes: list[str] = Field(description="registerOrg and grantRoles transactions")


class ApplicationOut(ApplicationStatus):
    contact_name: str
    contact_email: str
    admin_address: str
    node_endpoint: str
    node_public_key: str
    requested_roles: list[RoleName]
    reviewer: str | None


class UnsignedTx(Reply):
    function: str
    to: str
    data: str


class ApprovalTemplate(Reply):
    chain_id: int
    expected_org_id: int = Field(description="the registration must be the next org on chain")
    transactions: list[UnsignedTx] = Field(description="sign and post them in this order")
