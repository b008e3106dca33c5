"""Database tables of a node."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Dialect,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

# 64-bit integers: PostgreSQL's INTEGER stops at 2^31 (SQLite's INTEGER is 64-bit already)
BIG_INTEGER = BigInteger().with_variant(Integer(), "sqlite")


class WeiAmount(TypeDecorator[int]):
    """An amount of wei (up to 2^256): NUMERIC(78, 0) on PostgreSQL, decimal text elsewhere
    (SQLite's INTEGER stops at 2^63). Compared and summed in Python, never in SQL."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: int | None, dialect: Dialect) -> object:
        if value is None:
            return None
        return Decimal(value) if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: object, dialect: Dialect) -> int | None:
        return None if value is None else int(value)  # type: ignore[call-overload]


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(at: datetime) -> datetime:
    """A time this store wrote in UTC, as read back: SQLite returns it without its zone."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class ChainEvent(SQLModel, table=True):
    """One decoded contract event, copied from the chain by the indexer."""

    __tablename__ = "chain_event"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_chain_event_log"),)

    id: int | None = Field(default=None, primary_key=True)
    block_number: int = Field(index=True)
    block_hash: str
    tx_hash: str = Field(index=True)
    log_index: int
    contract: str = Field(index=True)
    address: str
    event: str = Field(index=True)
    args: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class IndexerCursor(SQLModel, table=True):
    """How far the indexer has copied events: the next block to read, per chain and deployment,
    and the hash of the block before it (read, even if empty and so not stored): the chain still
    holds what was read while the next block's parent is that hash."""

    __tablename__ = "indexer_cursor"

    name: str = Field(primary_key=True)
    next_block: int
    last_hash: str | None = None


class DeploymentBinding(SQLModel, table=True):
    """The one deployment (chain and contracts) this node's database belongs to: its tasks,
    results and index mean nothing on another (:mod:`privledger.node.binding`)."""

    __tablename__ = "deployment_binding"

    id: int = Field(
        default=1, primary_key=True, sa_type=BIG_INTEGER, sa_column_kwargs={"autoincrement": False}
    )
    chain_id: int = Field(sa_type=BIG_INTEGER)
    genesis_hash: str
    deploy_block: int = Field(sa_type=BIG_INTEGER)
    addresses: str  # the contracts' addresses by name, as sorted-key JSON
    bound_at: datetime = Field(default_factory=utc_now)


class ApiUser(SQLModel, table=True):
    """A person or service of this organisation, acting through one of the node's accounts."""

    __tablename__ = "api_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    address: str
    created_at: datetime = Field(default_factory=utc_now)


class ApiToken(SQLModel, table=True):
    """A bearer token bound to a user and one on-chain role; only its sha256 is stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, index=True)
    user_id: int = Field(foreign_key="api_user.id", index=True)
    role: str
    revoked: bool = False
    created_at: datetime = Field(default_factory=utc_now)
    expires_at: datetime | None = None  # None: issued before tokens expired (migration 0007)


class LocalDataset(SQLModel, table=True):
    """A dataset this node holds: the file stays here, only its commitment goes on chain."""

    __tablename__ = "local_dataset"

    dataset_id: str = Field(primary_key=True)
    name: str
    path: str
    columns: list[str] = Field(sa_column=Column(JSON, nullable=False))
    row_count: int
    schema_hash: str
    commitment: str
    salt: str
    level: int
    unit_price: int = Field(sa_type=WeiAmount)
    created_at: datetime = Field(default_factory=utc_now)


class LocalTask(SQLModel, table=True):
    """This node's part in a task: the spec it holds or fetched, and what its worker did."""

    __tablename__ = "local_task"

    task_id: int = Field(primary_key=True)
    spec_json: str | None = None
    spec_hash: str
    state: str = Field(default="pending", index=True)
    failure: str | None = None
    salt: str | None = None
    result_path: str | None = None
    result_size: int | None = Field(default=None, sa_type=BIG_INTEGER)
    result_digest: str | None = None
    transcript_hash: str | None = None
    protocol_seconds: float | None = None
    # resources of this node's part, once anchored (privledger.node.usage says what each means)
    bytes_sent: int | None = Field(default=None, sa_type=BIG_INTEGER)
    bytes_received: int | None = Field(default=None, sa_type=BIG_INTEGER)
    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = Field(default=None, sa_type=BIG_INTEGER)
    usage_shared: bool | None = None
    updated_at: datetime = Field(default_factory=utc_now)


class PsiService(SQLModel, table=True):
    """A PSI service this node publishes over one of its datasets (F12)."""

    __tablename__ = "psi_service"

    name: str = Field(primary_key=True)
    dataset_id: str = Field(foreign_key="local_dataset.dataset_id")
    column: str
    output: str  # "requester" or "both"
    price_wei: int = Field(sa_type=WeiAmount)
    description: str = ""
    active: bool = True
    created_at: datetime = Field(default_factory=utc_now)


class ServiceCall(SQLModel, table=True):
    """One call of a published service; its digest is anchored in a Merkle batch."""

    __tablename__ = "service_call"

    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(index=True)
    task_id: int = Field(unique=True)
    caller_org: int
    spec_hash: str
    outcome: str  # "ran" or the refusal reason
    at: datetime = Field(default_factory=utc_now)
    digest: str
    batch_id: int | None = Field(default=None, index=True)
    batch_index: int | None = None
    batch_tx: str | None = None


class ChainBlock(SQLModel, table=True):
    """One block of the chain, copied by the indexer for the explorer."""

    __tablename__ = "chain_block"

    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    hash: str = Field(unique=True, index=True)
    parent_hash: str
    timestamp: int = Field(index=True, sa_type=BIG_INTEGER)
    miner: str
    gas_used: int = Field(sa_type=BIG_INTEGER)
    tx_count: int


class ChainTx(SQLModel, table=True):
    """One transaction with its call decoded from our ABIs (``contract``/``function``/``args``)."""

    __tablename__ = "chain_tx"
    __table_args__ = (
        Index("ix_chain_tx_position", "block_number", "tx_index", unique=True),
        Index("ix_chain_tx_sender_position", "sender", "block_number", "tx_index"),
        Index("ix_chain_tx_to_position", "to", "block_number", "tx_index"),
    )

    hash: str = Field(primary_key=True)
    block_number: int
    tx_index: int
    sender: str
    to: str | None = None
    nonce: int
    value_wei: str  # decimal text: wei amounts overflow a 64-bit integer column
    contract: str | None = None  # the ledger contract called or created, if any
    function: str  # decoded function name, "constructor", "transfer" or the 4-byte selector
    args: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: int
    gas_used: int = Field(sa_type=BIG_INTEGER)


class ChainRef(SQLModel, table=True):
    """Search index: a transaction's call (``log_index`` -1) or one of its events refers to a
    task, dataset, grant, org, batch or account (``kind``, ``value``)."""

    __tablename__ = "chain_ref"
    __table_args__ = (
        Index("ix_chain_ref_lookup", "kind", "value", "block_number"),
        Index("ix_chain_ref_name", "name", "kind", "value"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    value: str
    name: str  # the event or function name
    tx_hash: str = Field(index=True)
    log_index: int
    block_number: int


class LocalModel(SQLModel, table=True):
    """A model this node trained (as a horizontal FL aggregator) and registered on chain as a
    derived data asset: its hash is committed there, its use for prediction needs an FL grant."""

    __tablename__ = "local_model"

    model_id: str = Field(primary_key=True)  # the asset's dataset id on chain
    name: str = Field(unique=True)
    task_id: int = Field(unique=True)
    protocol: str
    path: str
    features: list[str] = Field(sa_column=Column(JSON, nullable=False))
    model_hash: str  # sha256 of the model file
    salt: str
    level: int
    unit_price: str  # decimal text: wei prices overflow a 64-bit integer column
    created_at: datetime = Field(default_factory=utc_now)


class AuditEntry(SQLModel, table=True):
    """One audited event (F18): an API call, a data or model access, an authorisation change.
    Its digest is anchored in a Merkle batch, so the log is tamper-evident."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utc_now, index=True)
    # api | authorisation | data_access | model_access | resource_usage
    action: str = Field(index=True)
    actor: str  # "user <address> (role)", "peer org N", "anonymous", "worker"
    subject: str  # "POST /api/v1/grants", a dataset id, a model id
    outcome: str  # an HTTP status, "read", "ran", ...
    task_id: int | None = Field(default=None, index=True)
    digest: str
    batch_id: int | None = Field(default=None, index=True)
    batch_index: int | None = None
    batch_tx: str | None = None


class OnboardingApplication(SQLModel, table=True):
    """An organisation's application to join the consortium (F16), kept by the node hosting the
    onboarding portal. The applicant holds a one-time tracking secret; only its hash is kept."""

    __tablename__ = "onboarding_application"

    id: str = Field(primary_key=True)  # random, 32 hex characters
    secret_hash: str
    org_name: str = Field(index=True)
    contact_name: str
    contact_email: str
    admin_address: str
    endpoint: str
    node_key: str  # 0x-prefixed hex of the node's X25519 public key
    roles: int  # requested roles (OrgRegistry bits) for the admin account
    status: str = Field(index=True)  # submitted | under_review | approved | rejected | expired
    reason: str | None = None
    reviewer: str | None = None
    submitted_at: datetime = Field(default_factory=utc_now)
    review_started_at: datetime | None = None
    decided_at: datetime | None = None
    org_id: int | None = None
    tx_hashes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class InteropContract(SQLModel, table=True):
    """A node partnership of the interop API (BFIA "node contract"), kept by both nodes."""

    __tablename__ = "interop_contract"

    contract_id: str = Field(primary_key=True)
    applicant_org: int
    partner_org: int
    status: str  # APPLIED | APPROVED | REJECTED | TERMINATED
    description: str | None = None
    expired_time: int | None = Field(default=None, sa_type=BIG_INTEGER)  # unix seconds
    anchor_batch_id: int | None = None  # the last transition's record, anchored in BatchAnchor
    anchor_tx: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


class InteropDatasetAudit(SQLModel, table=True):
    """A dataset authorisation of the interop API (BFIA "dataset audit"): approval issues an
    on-chain grant, termination revokes it. Kept by the requester's and the owner's nodes."""

    __tablename__ = "interop_dataset_audit"

    audit_id: str = Field(primary_key=True)
    contract_id: str = Field(index=True)
    dataset_id: str
    requester_org: int
    owner_org: int
    kinds: list[str] = Field(sa_column=Column(JSON, nullable=False))
    time_limit: int  # seconds the grant lasts
    times_limit: int  # uses the grant allows
    status: str  # APPLIED | APPROVED | REJECTED | TERMINATED
    grant_id: str | None = None
    grantor: str | None = None  # the data owner account that signed the grant
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)


def _integers_are_64_bit() -> None:
    """Every integer column is 64-bit, as SQLite's are: on PostgreSQL (32-bit INTEGER) the psycopg
    dialect casts each bound integer to its column's type, so a task or entry id of 2^31 asked
    for in a request would fail the query (a 500) instead of finding nothing."""
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if type(column.type) is Integer:
                column.type = BIG_INTEGER


_integers_are_64_bit()


class Pipeline(SQLModel, table=True):
    """A pipeline (F25) its runner started from this node: the job document as submitted and,
    per step, what the runner reported (task id and attempts, model id, derived datasets, the
    last error). A step's task status is read from the chain, not kept here."""

    __tablename__ = "pipeline"

    pipeline_id: int | None = Field(default=None, primary_key=True, sa_type=BIG_INTEGER)
    name: str = Field(index=True)
    job: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    job_hash: str
    created_by: str
    steps: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
