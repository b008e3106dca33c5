"""Request and response bodies of the REST API (camelCase on the wire)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from privledger.api.examples import TASK_EXAMPLES
from privledger.node.spec import (
    HEX32_PATTERN,
    Buckets,
    GbdtParams,
    Output,
    ProximalMu,
    Rounds,
    TaskKind,
    TaskProtocol,
    TrainingDp,
)
from privledger.node.terms import ColumnUse, PriceUnit

Hex32 = Field(pattern=HEX32_PATTERN)
KindName = Literal["psi", "pir", "stats", "fl"]


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Health(Body):
    status: Literal["ok"]
    org: str
    org_id: int
    chain_id: int
    block_number: int
    endpoint: str


class OrgOut(Body):
    org_id: int
    name: str
    admin: str
    endpoint: str
    node_key: str
    status: str


class DatasetTerms(Body):
    """What a registration records besides the file (the query of an upload)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    level: int = Field(ge=1, le=4, description="classification level, 1 (public) .. 4 (core)")
    unit_price: int = Field(ge=0, lt=2**128, description="wei per matched row")


class DatasetUploadTerms(DatasetTerms):
    format: Literal["csv", "parquet"] = Field(default="csv", description="the body's format")


class DatasetIn(DatasetTerms):
    path: str = Field(
        min_length=1,
        max_length=4096,
        description="a CSV or Parquet file in the organisation's import directory on the "
        "node, relative to it (or absolute inside it); without '..' or symlinks",
    )


class DatasetOut(Body):
    dataset_id: str
    name: str
    columns: list[str]
    row_count: int
    level: int
    unit_price: int
    schema_hash: str
    commitment: str
    retired: bool


class PriceIn(Body):
    unit: PriceUnit = "matched_row"
    wei: int = Field(default=0, ge=0, lt=2**128)


class TermsIn(Body):
    """A grant's terms (docs/grants.md); the canonical document is hashed on chain."""

    purpose: str = Field(default="", max_length=2_000)
    protocols: list[TaskProtocol] = Field(min_length=1, max_length=31)
    columns: dict[str, list[ColumnUse]] = Field(
        min_length=1, description="per column: join (key only), aggregate, retrieve (by keyword)"
    )
    outputs: list[Output] = Field(
        default=["requester"],
        min_length=1,
        description="who may learn the result: requester, both, or both only its size (size)",
    )
    min_result: int = Field(default=1, ge=1)
    max_requester_set: int | None = Field(default=None, ge=1)
    max_requester_ratio: float | None = Field(default=None, gt=0)
    price: PriceIn = PriceIn()
    min_fee_wei: int = Field(default=0, ge=0, lt=2**96)
    dealer: int | None = Field(default=None, ge=1, lt=2**32 - 1)
    max_epsilon: float | None = Field(
        default=None,
        gt=0,
        description="training (horizontal FL, vertical-lr): the most privacy budget a task may "
        "spend (epsilon at its delta); a training task without dp is refused",
    )
    min_threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="joint prediction: the lowest probability threshold an ids output may use "
        "(scores are refused)",
    )


class GrantIn(Body):
    dataset: str = Hex32
    grantee_org: int = Field(ge=1, lt=2**32)
    kinds: list[KindName] = Field(
        default=[], max_length=4, description="without terms: the kinds' default terms"
    )
    terms: TermsIn | None = None
    expires_in_s: int = Field(ge=60, le=366 * 86_400)
    max_uses: int = Field(ge=1, lt=2**32)


class GrantOut(Body):
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


class ApprovalIn(Body):
    decision: Literal["approve", "reject"]


SpecStatus = Literal["verified", "unreachable", "mismatch"]
GrantState = Literal["usable", "expired", "used_up", "revoked", "other_kind"]


class ColumnUseOut(Body):
    column: str
    use: ColumnUse = Field(description="what the task does with the column")


class RequestOut(Body):
    """A pending task as it concerns the owner's dataset, read from its verified spec."""

    protocol: TaskProtocol
    column_uses: list[ColumnUseOut] = Field(description="each column of the owner's input")
    output: Output = Field(description="who learns the result (size: both, only its size)")
    recipients: list[int] = Field(description="the organisations that learn the result")
    dealer_org: int | None = Field(description="the dealer or aggregator the task names")
    participants: list[int]


class TermCheckOut(Body):
    """One term: what the request asks beside what the terms allow."""

    term: str = Field(description="the term's name in the terms document")
    requested: str
    allowed: str
    kept: bool = Field(description="False for the term the request breaks")


class TermsReviewOut(Body):
    """The request held to one set of terms of the owner's: a grant it gave the requester on
    this dataset (whatever its state), or, with none, the default terms of the task's kind."""

    source: Literal["grant", "default"]
    grant_id: str | None = None
    grant_state: GrantState | None = Field(
        default=None,
        description="the grant now: revoked, expired, used up, for another kind of task, or "
        "usable (then its terms refuse the task, or it was issued after the submission)",
    )
    purpose: str = ""
    violation: str | None = Field(description="the term the request breaks and why, or None")
    terms: list[TermCheckOut]


class ApprovalOut(Body):
    task_id: int
    dataset: str
    requester_org: int
    status: str
    protocol: str = Field(description="the protocol the task names on chain")
    fee_wei: int = Field(description="the fee the task escrows")
    spec_status: SpecStatus | None = Field(
        default=None,
        description="the spec fetched from the requester's node: verified against the spec hash "
        "and the task on chain, unreachable, or mismatch (only a verified spec can be approved); "
        "None when the request no longer waits",
    )
    spec_message: str | None = Field(default=None, description="why the spec is not verified")
    request: RequestOut | None = Field(default=None, description="with a verified spec")
    reviews: list[TermsReviewOut] = Field(
        default=[], description="the request against the owner's terms, with a verified spec"
    )


class RawTransactionIn(Body):
    raw_transaction: str = Field(pattern=r"^0x[0-9a-fA-F]+$", max_length=65_536)


class TxOut(Body):
    tx_hash: str
    block_number: int


class TaskInputIn(Body):
    dataset: str = Hex32
    column: str = Field(min_length=1, max_length=200)
    value_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="PIR: the column to retrieve; lending: the amount; FL: the label",
    )
    features: list[str] | None = Field(
        default=None, min_length=1, max_length=200, description="FL: this party's feature columns"
    )


class TaskIn(Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [example.body for example in TASK_EXAMPLES.values()]}
    )

    kind: TaskKind = "psi"
    protocol: TaskProtocol = "ecdh"
    inputs: list[TaskInputIn] = Field(min_length=2, max_length=8)
    dealer: int | None = Field(
        default=None, ge=1, lt=2**63, description="statistics: the dealing organisation"
    )
    histogram_edges: list[float] | None = Field(
        default=None,
        min_length=2,
        max_length=101,
        description="joint statistics: histogram bin edges (increasing)",
    )
    frac_bits: int = Field(
        default=16,
        ge=0,
        le=24,
        description="statistics: fixed-point fractional bits (fewer bits, larger values)",
    )
    rounds: Rounds = None
    proximal_mu: ProximalMu = None
    dp: TrainingDp | None = Field(
        default=None,
        description="horizontal FL and vertical-lr: differential privacy of the trained model",
    )
    gbdt: GbdtParams | None = Field(
        default=None, description="vertical-gbdt: the training parameters (unset: defaults)"
    )
    buckets: Buckets = None
    output: Output = Field(
        default="requester",
        description="two-party PSI: the requester, both, or both only the size (ECDH); "
        "vertical-lr: requester (model kept shared) or weights (each party its own, leaks "
        "labels); vertical-gbdt: requester (each party keeps its part) or model (merged, "
        "LightGBM text, to the requester); vertical-predict: scores or ids (above the threshold)",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="vertical prediction, output ids: the probability the released ids reach",
    )
    model_task: int | None = Field(
        default=None, ge=1, lt=2**63, description="vertical prediction: the model's training task"
    )
    fee_wei: int = Field(default=0, ge=0, lt=2**96)
    deadline_s: int = Field(default=3_600, ge=60, le=30 * 86_400)
    project: int | None = Field(
        default=None, ge=1, lt=2**63, description="the project the task belongs to (F14)"
    )


class TaskEvent(Body):
    block_number: int
    tx_hash: str
    contract: str
    event: str
    args: dict[str, object]


class TaskResources(Body):
    """The resources of this node's part in a task (``docs/operations.md`` says what each
    figure means and its limits)."""

    cpu_seconds: float = Field(description="CPU time of the node's process over the task's part")
    peak_rss_bytes: int = Field(description="the process's peak resident memory meanwhile")
    bytes_sent: int = Field(description="payload bytes sent to the task's peers, before framing")
    bytes_received: int = Field(description="payload bytes received from the task's peers")
    shared: bool = Field(
        description="another task ran in the process meanwhile: CPU and memory are upper bounds"
    )


class TaskOut(Body):
    task_id: int
    status: str
    kind: str
    spec_hash: str
    requester_org: int
    participants: list[int]
    inputs: list[str]
    fee: int
    deadline: int
    failure_reason: int
    local_state: str | None
    local_failure: str | None
    local_protocol_seconds: float | None
    local_bytes_sent: int | None
    local_resources: TaskResources | None = None  # this node's part, once it anchored
    timeline: list[TaskEvent]


class TaskResult(Body):
    task_id: int
    items: list[str]
    salt: str
    result_digest: str
    transcript_hash: str


class ServiceIn(Body):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    dataset: str = Hex32
    column: str = Field(min_length=1, max_length=200)
    output: Literal["requester", "both"] = "requester"
    price_wei: int = Field(default=0, ge=0, lt=2**96)
    description: str = Field(default="", max_length=2_000)


class ServiceOut(Body):
    name: str
    provider_org: int
    dataset: str
    column: str
    output: Literal["requester", "both"]
    price_wei: int
    description: str
    active: bool


class CallerIn(Body):
    org: int = Field(ge=1, lt=2**63)
    max_calls: int = Field(ge=1, lt=2**32)
    expires_in_s: int = Field(ge=60, le=366 * 86_400)


class ServiceCallIn(Body):
    provider: int = Field(ge=1, lt=2**63, description="the service's organisation")
    service: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    dataset: str = Hex32
    column: str = Field(min_length=1, max_length=200)
    protocol: Literal["ecdh", "kkrt", "rr22"] = "kkrt"
    deadline_s: int = Field(default=3_600, ge=60, le=30 * 86_400)


class CallLogOut(Body):
    task_id: int
    service: str
    caller_org: int
    spec_hash: str
    outcome: str
    at: str
    digest: str
    batch_id: int | None
    batch_index: int | None


class ModelIn(Body):
    task_id: int = Field(
        ge=1,
        lt=2**63,
        description="the completed FL task: horizontal, vertical-lr with its model kept shared, "
        "or vertical-gbdt",
    )
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    unit_price: int = Field(default=0, ge=0, lt=2**96, description="wei per predicted row")
    upstream_bps: int = Field(
        default=3_000, ge=0, le=10_000, description="share of prediction fees to the data owners"
    )


class ModelOut(Body):
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
