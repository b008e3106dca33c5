"""Task specifications: what a task computes, on which inputs, for whom.

One pydantic model per protocol family, joined in the discriminated union :data:`TaskSpec`
(discriminator ``protocol``). Each model holds only the fields its protocol takes, so a field
that does not belong to the protocol (a dealer on a PSI task, buckets on PIR) is refused by
name, and each model's shape rules sit next to its fields.

The canonical form, hashed with keccak256 and submitted on chain, is the model's every field
(defaults included, ``null`` for an unset optional) as JSON with sorted keys, no whitespace and
non-ASCII characters escaped (``json.dumps(..., sort_keys=True, separators=(",", ":"))``).
Every worker re-parses the spec it fetched and checks that hash before it touches data. The
``version`` field names this layout; version 2 is the typed one (version 1 was a single flat
model whose canonical form held every field of every protocol).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from privledger.evm.hashing import keccak256
from privledger.node.components import (
    BUILTIN_IDS,
    KINDS,
    ComponentRef,
    component_for,
    resolve,
)
from privledger.protocols.fl.gbdt_binning import MAX_BINS
from privledger.protocols.fl.gbdt_tree import MAX_DEPTH
from privledger.protocols.fl.vertical import VerticalDp

HEX32_PATTERN = r"^0x[0-9a-fA-F]{64}$"
SERVICE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
TaskKind = Literal["psi", "pir", "stats", "fl"]
PsiOutput = Literal["requester", "both", "size"]
"""Who learns a two-party PSI's result: the requester, both parties, or both only its size."""
Output = Literal[PsiOutput, "weights", "model", "scores", "ids"]
"""What a task releases, as grant terms list it: a PSI's outputs; ``weights``, each vertical-lr
party's own final weights (a label leak, see docs/security-model.md); ``model``, a vertical-gbdt
model merged and exported (LightGBM text) to the requester, every party's splits revealed; a
vertical-predict task's ``scores`` or only the ``ids`` above a threshold."""
PsiProtocol = Literal["ecdh", "kkrt", "rr22"]
SetOperation = Literal["intersection3", "union3", "difference", "membership"]
PirProtocol = Literal["simplepir", "bucket"]
LendingProtocol = Literal["lending-total", "lending-exceeds"]
HorizontalProtocol = Literal["horizontal-lr", "horizontal-mlp"]
TaskProtocol = Literal[
    PsiProtocol,
    SetOperation,
    PirProtocol,
    "joint-stats",
    LendingProtocol,
    "vertical-lr",
    HorizontalProtocol,
    "predict",
    "vertical-predict",
    "vertical-gbdt",
]
PSI_PROTOCOLS: tuple[PsiProtocol, ...] = ("ecdh", "kkrt", "rr22")
SET_OPERATIONS: tuple[SetOperation, ...] = ("intersection3", "union3", "difference", "membership")
PIR_PROTOCOLS: tuple[PirProtocol, ...] = ("simplepir", "bucket")
STATS_PROTOCOLS = ("joint-stats", "lending-total", "lending-exceeds")
HORIZONTAL_PROTOCOLS: tuple[HorizontalProtocol, ...] = ("horizontal-lr", "horizontal-mlp")
PROTOCOL_IDS = BUILTIN_IDS  # the built-in protocols' ids on chain
TASK_KINDS = KINDS
PROTOCOL_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
MAX_STATS_PARTIES = 8
MODEL_COLUMN = "model"  # a prediction task's model input names this column
THREE_PARTY = ("intersection3", "union3")

# options a task body passes through to its spec unchanged
Rounds = Annotated[
    int | None,
    Field(
        ge=1,
        le=500,
        description="FL training length: FedAvg rounds (horizontal), gradient epochs (vertical)",
    ),
]
ProximalMu = Annotated[
    float | None, Field(ge=0, le=10, description="horizontal FL: FedProx's mu (unset: FedAvg)")
]
Buckets = Annotated[
    int | None,
    Field(
        ge=1,
        le=100_000,
        description="KKRT-PSI over very large files: partition both sets into this many buckets; "
        "the intersection is a file (GET /tasks/{id}/result/file)",
    ),
]


# every model of a spec: no field it does not declare, and no NaN or infinity, which the canonical
# JSON would carry as tokens no standard parser (a partner's, an auditor's) reads
SPEC_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TrainingDp(BaseModel):
    """Differential privacy of a trained model (privledger.protocols.fl.dp): in horizontal FL
    every client clips its update to ``clip_norm`` and adds its share of Gaussian noise; in
    vertical-lr every party clips its columns of each row (a whole row to ``clip_norm``) and adds
    its share of Gaussian noise to every shared gradient. The budget (epsilon at ``delta``)
    follows from the noise multiplier and the rounds (privledger.node.budget)."""

    model_config = SPEC_CONFIG

    noise_multiplier: float = Field(gt=0, le=1_000, description="noise std / sensitivity")
    clip_norm: float = Field(
        default=1.0, gt=0, le=1_000, description="L2 norm bound: of an update, of a row (vertical)"
    )
    delta: float = Field(default=1e-5, gt=0, le=1e-3, description="the budget's delta")


class GbdtParams(BaseModel):
    """Training parameters of vertical-gbdt (privledger.protocols.fl.gbdt.GbdtConfig; defaults
    as there). ``early_stopping_rounds`` > 0 holds out the validation fifth of the aligned rows
    and keeps the trees up to the best validation loss."""

    model_config = SPEC_CONFIG

    trees: int = Field(default=10, ge=1, le=500, description="boosting rounds")
    depth: int = Field(default=5, ge=1, le=MAX_DEPTH, description="tree depth")
    learning_rate: float = Field(default=0.1, gt=0, le=1, description="shrinkage")
    bins: int = Field(default=32, ge=2, le=MAX_BINS, description="quantile bins per column")
    l2: float = Field(default=1.0, ge=0, le=1_000, description="L2 regularisation of leaves")
    min_child_samples: int = Field(default=20, ge=1, le=100_000, description="rows per leaf")
    row_subsample: float = Field(default=1.0, gt=0, le=1, description="rows sampled per tree")
    col_subsample: float = Field(default=1.0, gt=0, le=1, description="columns per tree")
    early_stopping_rounds: int = Field(
        default=0, ge=0, le=500, description="rounds without validation gain (0: off)"
    )


FracBits = Annotated[int, Field(ge=0, le=24, description="statistics: fixed-point fractional bits")]


class SpecInput(BaseModel):
    model_config = SPEC_CONFIG

    dataset: str = Field(pattern=HEX32_PATTERN, description="dataset id on chain")
    org: int = Field(ge=1, description="owner organisation of the dataset")
    column: str = Field(min_length=1, max_length=200, description="the key column")
    value_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="PIR: the column returned; lending: the amount; FL: the label",
    )
    features: tuple[str, ...] | None = Field(
        default=None, min_length=1, max_length=200, description="FL: this party's feature columns"
    )

    @property
    def key_only(self) -> bool:
        return self.value_column is None and self.features is None


class _Spec(BaseModel):
    """What every task has: a requester, inputs from distinct organisations, a nonce."""

    model_config = SPEC_CONFIG

    version: Literal[3] = 3
    component: ComponentRef = Field(description="the component that runs the task, as installed")
    requester: int = Field(ge=1)
    inputs: tuple[SpecInput, ...] = Field(min_length=2, max_length=MAX_STATS_PARTIES)
    nonce: str = Field(default_factory=lambda: secrets.token_hex(16), pattern=r"^[0-9a-f]{32}$")
    project: int | None = Field(
        default=None, ge=1, lt=2**63, description="the ProjectRegistry project the task belongs to"
    )

    @field_validator("inputs")
    @classmethod
    def _distinct_inputs(cls, inputs: tuple[SpecInput, ...]) -> tuple[SpecInput, ...]:
        if len({item.dataset.lower() for item in inputs}) != len(inputs):
            raise ValueError("inputs must name distinct datasets")
        if len({item.org for item in inputs}) != len(inputs):
            raise ValueError("each input comes from a different organisation")
        return inputs

    @property
    def owners(self) -> set[int]:
        return {item.org for item in self.inputs}

    @property
    def dealer_org(self) -> int | None:
        """The organisation dealing correlated randomness, for the protocols that have one."""
        return None

    @property
    def participants(self) -> list[int]:
        """The requester first, then every other input owner, each once, then the dealer."""
        ordered = [self.requester]
        for item in self.inputs:
            if item.org not in ordered:
                ordered.append(item.org)
        if self.dealer_org is not None:
            ordered.append(self.dealer_org)
        return ordered

    def peers_of(self, org: int) -> list[int]:
        """The participants ``org`` opens a channel to."""
        return [other for other in self.participants if other != org]

    def canonical_json(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()

    @property
    def hash(self) -> bytes:
        return keccak256(self.canonical_json())


class _RequesterLearns(_Spec):
    """Tasks whose output only the requester learns."""

    output: Literal["requester"] = "requester"


class PairPsiSpec(_Spec):
    """Two-party PSI: the requester's key column against one provider's, optionally as a call
    of the provider's published service, the intersection released to the requester or both,
    or (ECDH only) only its size to both."""

    kind: Literal["psi"] = "psi"
    protocol: PsiProtocol
    output: PsiOutput = "requester"
    service: str | None = Field(
        default=None, pattern=SERVICE_NAME_PATTERN, description="the provider's PSI service called"
    )

    @model_validator(mode="after")
    def _two_key_columns(self) -> PairPsiSpec:
        if len(self.inputs) != 2:
            raise ValueError(f"{self.protocol} takes 2 inputs")
        if not all(item.key_only for item in self.inputs):
            raise ValueError(f"{self.protocol} joins key columns and returns no value column")
        if self.output == "size" and self.protocol != "ecdh":
            raise ValueError("only ECDH-PSI releases the size alone (output size)")
        return self


class EcdhSpec(PairPsiSpec):
    protocol: Literal["ecdh"]


class KkrtSpec(PairPsiSpec):
    protocol: Literal["kkrt"]
    buckets: Buckets = None

    @model_validator(mode="after")
    def _buckets_not_for_services(self) -> KkrtSpec:
        if self.buckets is not None and self.service is not None:
            raise ValueError("a PSI service call takes no buckets")
        return self


class Rr22Spec(PairPsiSpec):
    """RR22 (VOLE + OKVS) PSI: KKRT's outputs with a quarter of its traffic (docs/security-model.md:
    which PSI to use); no buckets (the bucketed, streamed path is KKRT's)."""

    protocol: Literal["rr22"]


class SetOperationSpec(_RequesterLearns):
    """Three-party intersection and union, two-party difference and anonymous membership."""

    kind: Literal["psi"] = "psi"
    protocol: SetOperation

    @model_validator(mode="after")
    def _key_columns(self) -> SetOperationSpec:
        parties = 3 if self.protocol in THREE_PARTY else 2
        if len(self.inputs) != parties:
            raise ValueError(f"{self.protocol} takes {parties} inputs")
        if not all(item.key_only for item in self.inputs):
            raise ValueError(f"{self.protocol} reads key columns only")
        return self


class PirSpec(_RequesterLearns):
    """Keyword PIR: the requester's keys against one holder's key and value columns."""

    kind: Literal["pir"] = "pir"
    protocol: PirProtocol

    @model_validator(mode="after")
    def _one_holder(self) -> PirSpec:
        holders = [item for item in self.inputs if item.org != self.requester]
        if len(self.inputs) != 2 or len(holders) != 1 or holders[0].value_column is None:
            raise ValueError("a PIR task names one holder input with a value column")
        if any(item.features for item in self.inputs):
            raise ValueError("a PIR task reads no feature columns")
        return self


class _DealtSpec(_RequesterLearns):
    """Protocols on secret shares whose correlated randomness a third organisation deals."""

    dealer: int = Field(ge=1, description="the organisation dealing Beaver triples")

    @model_validator(mode="after")
    def _outside_dealer(self) -> _DealtSpec:
        if self.requester not in self.owners:
            raise ValueError("the requester contributes an input too")
        if self.dealer in self.owners:
            raise ValueError("the dealer holds none of the inputs")
        return self

    @property
    def dealer_org(self) -> int | None:
        return self.dealer


class JointStatsSpec(_DealtSpec):
    """Count, sum, mean, variance and histogram of one numeric column per party."""

    kind: Literal["stats"] = "stats"
    protocol: Literal["joint-stats"]
    frac_bits: FracBits = 16
    histogram_edges: tuple[float, ...] | None = Field(
        default=None, min_length=2, max_length=101, description="joint statistics: bin edges"
    )

    @model_validator(mode="after")
    def _numeric_columns(self) -> JointStatsSpec:
        if any(item.value_column or item.features for item in self.inputs):
            raise ValueError("joint statistics read one numeric column per input")
        edges = self.histogram_edges
        if edges is not None and any(b <= a for a, b in pairwise(edges)):
            raise ValueError("histogram edges must increase")
        return self


class LendingSpec(_DealtSpec):
    """The multi-lending check: every bank names its customer and amount columns; the
    requester's own input holds the customer (and, for "exceeds", the limit) and never leaves
    its node."""

    kind: Literal["stats"] = "stats"
    protocol: LendingProtocol
    frac_bits: FracBits = 16

    @model_validator(mode="after")
    def _amount_columns(self) -> LendingSpec:
        banks = [item for item in self.inputs if item.org != self.requester]
        if any(item.value_column is None for item in banks):
            raise ValueError("every bank's input names an amount column (value_column)")
        if any(item.features for item in self.inputs):
            raise ValueError("the multi-lending check reads no feature columns")
        return self


def _vertical_inputs(protocol: str, requester: int, inputs: tuple[SpecInput, ...]) -> None:
    """Vertical training: two or three parties' feature columns, the label in the requester's
    input and only there (which may hold no feature column)."""
    if len(inputs) not in (2, 3):
        raise ValueError(f"{protocol} aligns and trains two or three parties' columns")
    for item in inputs:
        if not item.features and item.org != requester:
            raise ValueError(f"every {protocol} input but the label's names its features")
        if (item.value_column is not None) != (item.org == requester):
            raise ValueError("the requester's input, and only it, names the label column")


class VerticalLrSpec(_DealtSpec):
    """Vertical logistic regression: two or three parties' feature columns on aligned ids;
    the requester's input, and only it, holds the label (and may hold no feature column).
    The model stays secret-shared between the parties (``output: requester``, the default:
    the requester may register it, :mod:`privledger.node.models`); ``output: weights`` opens
    each party's own weights to it, which leaks labels to crafted columns and needs every data
    owner's terms to list ``weights``."""

    kind: Literal["fl"] = "fl"
    protocol: Literal["vertical-lr"]
    rounds: Rounds = None
    output: Literal["requester", "weights"] = "requester"  # type: ignore[assignment]
    dp: TrainingDp | None = None

    @model_validator(mode="after")
    def _features_and_label(self) -> VerticalLrSpec:
        _vertical_inputs(self.protocol, self.requester, self.inputs)
        if self.dp is not None:
            VerticalDp(self.dp.noise_multiplier, self.dp.clip_norm)  # refuses what overflows
        return self


class VerticalGbdtSpec(_RequesterLearns):
    """Vertical gradient-boosted trees (SecureBoost): two or three parties' feature columns on
    aligned ids; the requester's input, and only it, holds the label. No dealer: the label
    holder's Paillier key protects the gradients. Each party keeps its own part of the model
    (its splits; the leaf values at the label holder; ``output: requester``, the default: the
    requester may register it); ``output: model`` also merges the model at the requester and
    exports it as LightGBM text, which reveals every party's splits and needs every data
    owner's terms to list ``model``."""

    kind: Literal["fl"] = "fl"
    protocol: Literal["vertical-gbdt"]
    output: Literal["requester", "model"] = "requester"  # type: ignore[assignment]
    gbdt: GbdtParams = GbdtParams()

    @model_validator(mode="after")
    def _features_and_label(self) -> VerticalGbdtSpec:
        _vertical_inputs(self.protocol, self.requester, self.inputs)
        if self.inputs[0].org != self.requester:
            raise ValueError("the requester's input (the labels) comes first")
        return self


class HorizontalSpec(_RequesterLearns):
    """Horizontal FL: the requester aggregates (and may hold an input too); every input is a
    client with the same number of feature columns and a label column. At least two clients
    besides the requester, so that the securely aggregated sum hides each one's update from
    an aggregator that holds a client's data itself."""

    kind: Literal["fl"] = "fl"
    protocol: HorizontalProtocol
    rounds: Rounds = None
    proximal_mu: ProximalMu = None
    dp: TrainingDp | None = None

    @model_validator(mode="after")
    def _clients(self) -> HorizontalSpec:
        widths = {len(item.features or ()) for item in self.inputs}
        if 0 in widths or len(widths) != 1:
            raise ValueError("every horizontal FL input names the same number of feature columns")
        if any(item.value_column is None for item in self.inputs):
            raise ValueError("every horizontal FL input names its label column (value_column)")
        if len(self.owners - {self.requester}) < 2:
            raise ValueError("horizontal FL needs at least two clients besides the requester")
        return self

    def peers_of(self, org: int) -> list[int]:
        """A star around the requester: clients talk only to the aggregator."""
        if org != self.requester:
            return [self.requester]
        return super().peers_of(org)


class PredictSpec(_RequesterLearns):
    """Prediction: the requester's rows (id column + features) and one model held by another
    organisation."""

    kind: Literal["fl"] = "fl"
    protocol: Literal["predict"]

    @model_validator(mode="after")
    def _rows_and_model(self) -> PredictSpec:
        rows = [item for item in self.inputs if item.org == self.requester]
        models = [item for item in self.inputs if item.org != self.requester]
        if len(self.inputs) != 2 or len(rows) != 1:
            raise ValueError("a prediction task takes the requester's rows and one model")
        if not rows[0].features or rows[0].value_column is not None:
            raise ValueError("the requester's input names its id column and feature columns")
        model = models[0]
        if model.column != MODEL_COLUMN or not model.key_only:
            raise ValueError(f"the model input names only column {MODEL_COLUMN!r}")
        return self


class VerticalPredictSpec(_DealtSpec):
    """Joint prediction with a registered vertical model (:mod:`privledger.node.models`): the
    model input (column ``model``) is the asset, owned by the label holder that registered it;
    every other party of the training task names its dataset of rows to score (id column and
    the columns it trained on), in the training task's order; a requester that holds no part
    of the model brings its batch of ids (id column only) as the last input. The scores go to
    the requester (``output: scores``, only to a requester holding ids), or only the ids whose
    probability reaches ``threshold`` (``output: ids``)."""

    kind: Literal["fl"] = "fl"
    protocol: Literal["vertical-predict"]
    output: Literal["scores", "ids"] = "ids"  # type: ignore[assignment]
    threshold: float | None = Field(
        default=None, gt=0, lt=1, description="vertical prediction: the probability released at"
    )
    model_task: int = Field(
        ge=1, lt=2**63, description="the vertical-lr or vertical-gbdt task that trained it"
    )

    @model_validator(mode="after")
    def _model_and_rows(self) -> VerticalPredictSpec:
        models = [item for item in self.inputs if item.column == MODEL_COLUMN]
        if len(models) != 1 or not models[0].key_only:
            raise ValueError(f"one input is the model, naming only column {MODEL_COLUMN!r}")
        batches = [item for item in self.inputs if item.column != MODEL_COLUMN and item.key_only]
        if batches and (len(batches) > 1 or batches[0] is not self.inputs[-1]):
            raise ValueError("an input without features is the requester's batch, listed last")
        if batches and batches[0].org != self.requester:
            raise ValueError("only the requester brings a batch of ids without features")
        if any(item.value_column for item in self.inputs):
            raise ValueError("vertical prediction reads no label or value column")
        if (self.output == "ids") != (self.threshold is not None):
            raise ValueError("output ids takes a threshold, output scores none")
        if self.output == "scores" and models[0].org == self.requester:
            raise ValueError("scores go only to a requester that holds rows of the batch")
        return self

    @property
    def model(self) -> SpecInput:
        return next(item for item in self.inputs if item.column == MODEL_COLUMN)


class ComponentSpec(_Spec):
    """A task run by a vendor's component (:mod:`privledger.node.components`): its inputs'
    columns as the component documents them, its options in ``params`` (checked by the
    component's ``params_model``), its output to whom the component allows."""

    kind: TaskKind
    protocol: str = Field(pattern=PROTOCOL_PATTERN)
    output: Output = "requester"
    params: dict[str, JsonValue] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _not_builtin(self) -> ComponentSpec:
        if self.protocol in BUILTIN_IDS:
            raise ValueError(f"{self.protocol} is a built-in protocol")
        return self


_BUILTIN_SPECS: dict[str, type[_Spec]] = {
    **dict.fromkeys(("ecdh",), EcdhSpec),
    **dict.fromkeys(("kkrt",), KkrtSpec),
    **dict.fromkeys(("rr22",), Rr22Spec),
    **dict.fromkeys(SET_OPERATIONS, SetOperationSpec),
    **dict.fromkeys(PIR_PROTOCOLS, PirSpec),
    **dict.fromkeys(("joint-stats",), JointStatsSpec),
    **dict.fromkeys(("lending-total", "lending-exceeds"), LendingSpec),
    **dict.fromkeys(("vertical-lr",), VerticalLrSpec),
    **dict.fromkeys(("vertical-gbdt",), VerticalGbdtSpec),
    **dict.fromkeys(HORIZONTAL_PROTOCOLS, HorizontalSpec),
    **dict.fromkeys(("predict",), PredictSpec),
    **dict.fromkeys(("vertical-predict",), VerticalPredictSpec),
}


def _model_tag(value: object) -> str:
    """A built-in protocol's model, or the vendor components' one for any other protocol."""
    protocol = value.get("protocol") if isinstance(value, dict) else getattr(value, "protocol", "")
    model = _BUILTIN_SPECS.get(protocol) if isinstance(protocol, str) else None
    return ComponentSpec.__name__ if model is None else model.__name__


TaskSpec = Annotated[
    Annotated[EcdhSpec, Tag("EcdhSpec")]
    | Annotated[KkrtSpec, Tag("KkrtSpec")]
    | Annotated[Rr22Spec, Tag("Rr22Spec")]
    | Annotated[SetOperationSpec, Tag("SetOperationSpec")]
    | Annotated[PirSpec, Tag("PirSpec")]
    | Annotated[JointStatsSpec, Tag("JointStatsSpec")]
    | Annotated[LendingSpec, Tag("LendingSpec")]
    | Annotated[VerticalLrSpec, Tag("VerticalLrSpec")]
    | Annotated[VerticalGbdtSpec, Tag("VerticalGbdtSpec")]
    | Annotated[HorizontalSpec, Tag("HorizontalSpec")]
    | Annotated[PredictSpec, Tag("PredictSpec")]
    | Annotated[VerticalPredictSpec, Tag("VerticalPredictSpec")]
    | Annotated[ComponentSpec, Tag("ComponentSpec")],
    Discriminator(_model_tag),
]
"""Any task's spec; the ``protocol`` field chooses the model (a vendor component's protocol,
:class:`ComponentSpec`)."""
StatsSpec = JointStatsSpec | LendingSpec
_SPECS: TypeAdapter[TaskSpec] = TypeAdapter(TaskSpec)


def parse_spec(fields: Mapping[str, object]) -> TaskSpec:
    """The spec these fields describe (``protocol`` chooses the model), naming the installed
    component of its protocol unless the fields name one; ValidationError if the protocol does
    not take one of the fields or the shape breaks its rules, ComponentUnavailable if no
    installed component runs the protocol, or it does not take the spec."""
    protocol = str(fields.get("protocol", ""))
    component = component_for(protocol)
    fields = {"component": component.ref.model_dump(), **fields}
    if protocol not in BUILTIN_IDS:
        fields.setdefault("kind", component.kind)
    spec = _SPECS.validate_python(fields)
    resolve(spec.component, protocol).check(spec)
    return spec


def parse_canonical(raw: bytes) -> TaskSpec:
    """A spec from its canonical JSON (as fetched from the requester's node)."""
    return _SPECS.validate_json(raw)


def spec_error(exc: ValidationError) -> str:
    """The first problem of a refused spec, with the field it concerns."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"][1:] if not isinstance(part, int))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
