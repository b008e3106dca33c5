"""Request and response bodies of the REST API (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue

from privledger.api.examples import TASK_EXAMPLES
from privledger.node.components import HASH_PATTERN, ComponentRef
from privledger.node.spec import (
    HEX32_PATTERN,
    PROTOCOL_PATTERN,
    Buckets,
    GbdtParams,
    Output,
    ProximalMu,
    Rounds,
    TaskKind,
    TrainingDp,
)
from privledger.node.terms import ColumnUse, PriceUnit

# the response bodies, shared with the SDK (privledger.wire imports nothing of the node)
from privledger.wire.approvals import ApprovalOut as ApprovalOut
from privledger.wire.approvals import ColumnUseOut as ColumnUseOut
from privledger.wire.approvals import GrantState as GrantState
from privledger.wire.approvals import RequestOut as RequestOut
from privledger.wire.approvals import SpecStatus as SpecStatus
from privledger.wire.approvals import TermCheckOut as TermCheckOut
from privledger.wire.approvals import TermsReviewOut as TermsReviewOut
from privledger.wire.assets import CallLogOut as CallLogOut
from privledger.wire.assets import DatasetOut as DatasetOut
from privledger.wire.assets import GrantOut as GrantOut
from privledger.wire.assets import Health as Health
from privledger.wire.assets import KindName as KindName
from privledger.wire.assets import ModelOut as ModelOut
from privledger.wire.assets import OrgOut as OrgOut
from privledger.wire.assets import ServiceOut as ServiceOut
from privledger.wire.assets import TxOut as TxOut
from privledger.wire.body import Body as Body
from privledger.wire.tasks import TaskEvent as TaskEvent
from privledger.wire.tasks import TaskOut as TaskOut
from privledger.wire.tasks import TaskResources as TaskResources
from privledger.wire.tasks import TaskResult as TaskResult

Hex32 = Field(pattern=HEX32_PATTERN)
Protocol = Annotated[str, Field(pattern=PROTOCOL_PATTERN, examples=["ecdh", "kkrt"])]
CodeHash = Annotated[str, Field(pattern=HASH_PATTERN)]


class DatasetTerms(Body):
    """What a registration records besides the file (the query of an upload)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    level: int = Field(ge=1, le=4, description="classification level, 1 (public) .. 4 (core)")
    unit_price: int = Field(ge=0, lt=2**128, description="wei per matched row")


class DerivedDatasetIn(Body):
    """A dataset derived from a set task's result (``privledger.node.derived``)."""

    task_id: int = Field(ge=1, lt=2**63, description="the set task whose result aligns the rows")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    unit_price: int = Field(ge=0, lt=2**128, description="wei per matched row")
    upstream_bps: int = Field(
        default=0, ge=0, le=10_000, description="the share of its revenue passed to its parents"
    )


class DatasetUploadTerms(DatasetTerms):
    format: Literal["csv", "parquet"] = Field(default="csv", description="the body's format")


class DatasetIn(DatasetTerms):
    path: str = Field(
        min_length=1,
        max_length=4096,
        description="a CSV or Parquet file in the organisation's import directory on the "
        "node, relative to it (or absolute inside it); without '..' or symlinks",
    )


class PriceIn(Body):
    unit: PriceUnit = "matched_row"
    wei: int = Field(default=0, ge=0, lt=2**128)


class DeriveTermsIn(Body):
    upstream_bps: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="the share of what a derived dataset earns that goes to its parents' owners",
    )


class TermsIn(Body):
    """A grant's terms (docs/grants.md); the canonical document is hashed on chain."""

    purpose: str = Field(default="", max_length=2_000)
    protocols: list[Protocol] = Field(
        min_length=1,
        max_length=31,
        description="the protocols allowed: built-in ones (docs/protocols.md) or an installed "
        "component's (GET /components)",
    )
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
    components: list[CodeHash] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the code hashes of the components allowed to touch the data (GET "
        "/components); unset: any component of the allowed protocols",
    )
    derive: DeriveTermsIn | None = Field(
        default=None,
        description="pipelines: the grantee may have this node register the aligned rows of a set "
        "task under this grant as a derived dataset, granted to it under these terms (unset: "
        "never; docs/pipelines.md)",
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


class ApprovalIn(Body):
    decision: Literal["approve", "reject"]


class RawTransactionIn(Body):
    raw_transaction: str = Field(pattern=r"^0x[0-9a-fA-F]+$", max_length=65_536)


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
    protocol: Protocol = "ecdh"
    component: ComponentRef | None = Field(
        default=None,
        description="the component to run, pinned (unset: the one installed for the protocol)",
    )
    params: dict[str, JsonValue] | None = Field(
        default=None, description="a vendor component's options (its params schema)"
    )
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


class ServiceIn(Body):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    dataset: str = Hex32
    column: str = Field(min_length=1, max_length=200)
    output: Literal["requester", "both"] = "requester"
    price_wei: int = Field(default=0, ge=0, lt=2**96)
    description: str = Field(default="", max_length=2_000)


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
