"""The node, the consortium's organisations, and what an organisation holds and offers: datasets,
grants, PSI services, models, API tokens; inclusion proofs of its logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from privledger.wire.body import Reply

KindName = Literal["psi", "pir", "stats", "fl"]


class Health(Reply):
    status: Literal["ok"]
    org: str
    org_id: int
    chain_id: int
    block_number: int
    endpoint: str


class OrgOut(Reply):
    org_id: int
    name: str
    admin: str
    endpoint: str
    node_key: str
    status: str


class Me(Reply):
    """The token's user, account and role, and the node's organisation."""

    user: str
    address: str
    role: str
    org_id: int


class DatasetOut(Reply):
    dataset_id: str
    name: str
    columns: list[str]
    row_count: int
    level: int
    unit_price: int
    schema_hash: str
    commitment: str
    retired: bool


class DerivedOut(Reply):
    """A dataset one participant of a set task derived from its result (its aligned rows), and
    the grant of it to the task's requester (none for the requester's own)."""

    org_id: int
    dataset_id: str
    name: str
    columns: list[str]
    row_count: int
    grant_id: str | None = None


class GrantOut(Reply):
    grant_id: str
    dataset: str
    grantee_org: int
    kinds: list[KindName]
    expiry: int
    max_uses: int
    used: int
    revoked: bool
    min_fee_wei: int
    terms_hash: str
    terms: dict[str, Any] | None = Field(
        description="the terms document published with the grant (null if it does not match)"
    )


class TxOut(Reply):
    tx_hash: str
    block_number: int


class ServiceOut(Reply):
    name: str
    provider_org: int
    dataset: str
    column: str
    output: Literal["requester", "both"]
    price_wei: int
    description: str
    active: bool


class CallLogOut(Reply):
    task_id: int
    service: str
    caller_org: int
    spec_hash: str
    outcome: str
    at: str
    digest: str
    batch_id: int | None
    batch_index: int | None


class ProofOut(Reply):
    """A log entry with its Merkle inclusion proof against a batch root anchored on chain:
    everything needed to check it offline or on chain (``docs/policies-and-audit.md``)."""

    format: str
    digest: str = Field(description="the entry's digest, the leaf's preimage")
    leaf: str
    proof: list[str] = Field(description="the sibling hashes from the leaf to the root")
    root: str
    batch_id: int
    chain_id: int
    contract: str = Field(description="the anchoring contract")
    tx_hash: str = Field(description="the transaction that anchored the batch")
    block_number: int
    entry: dict[str, str | int | None] = Field(description="the entry the digest commits to")


AuditAction = Literal["api", "authorisation", "data_access", "model_access", "resource_usage"]


class AuditEntryOut(Reply):
    """One entry of the node's audit log: the fields its digest commits to, and the batch that
    anchored it (``None`` until then)."""

    id: int
    at: str
    action: str
    actor: str
    subject: str
    outcome: str
    task_id: int | None
    digest: str
    batch_id: int | None
    batch_index: int | None


class ModelOut(Reply):
    model_id: str
    name: str
    task_id: int
    protocol: str
    features: list[str]
    model_hash: str
    level: int
    unit_price: int
    parents: list[str]
    retired: bool


class TokenOut(Reply):
    id: int
    user: str
    address: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked: bool
