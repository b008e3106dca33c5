"""Task specifications: what a task computes, on which inputs, for whom.

A spec is canonicalised as sorted-key compact JSON and hashed with keccak256; that hash is what the
requester submits on chain, and what every worker checks the spec it fetched against before it
touches data.
"""

from __future__ import annotations

import json
import secrets
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from privledger.evm.contracts import Kind
from privledger.evm.hashing import keccak256

HEX32_PATTERN = r"^0x[0-9a-fA-F]{64}$"
SERVICE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
TaskKind = Literal["psi", "pir", "stats", "fl"]
TaskProtocol = Literal[
    "ecdh",
    "kkrt",
    "intersection3",
    "union3",
    "difference",
    "membership",
    "simplepir",
    "bucket",
    "joint-stats",
    "lending-total",
    "lending-exceeds",
    "vertical-lr",
    "horizontal-lr",
    "horizontal-mlp",
    "predict",
]
# protocol -> its id on chain (1..31; a grant allows protocols as bits 1 << id) and its kind
PROTOCOL_IDS: dict[str, int] = {
    "ecdh": 1,
    "kkrt": 2,
    "intersection3": 3,
    "union3": 4,
    "difference": 5,
    "membership": 6,
    "simplepir": 7,
    "bucket": 8,
    "joint-stats": 9,
    "lending-total": 10,
    "lending-exceeds": 11,
    "vertical-lr": 12,
    "horizontal-lr": 13,
    "horizontal-mlp": 14,
    "predict": 15,
}
PSI_PROTOCOLS = ("ecdh", "kkrt")
STATS_PROTOCOLS = ("joint-stats", "lending-total", "lending-exceeds")
SET_OPERATIONS = ("intersection3", "union3", "difference", "membership")
TASK_KINDS = {"psi": Kind.PSI, "pir": Kind.PIR, "stats": Kind.STATS, "fl": Kind.FL}
MAX_STATS_PARTIES = 8  # spec kind -> the ledger's kind bit
PIR_PROTOCOLS = ("simplepir", "bucket")
HORIZONTAL_PROTOCOLS = ("horizontal-lr", "horizontal-mlp")
MODEL_COLUMN = "model"  # a prediction task's model input names this column
PROTOCOL_KINDS: dict[str, Kind] = {
    **dict.fromkeys(PSI_PROTOCOLS + SET_OPERATIONS, Kind.PSI),
    **dict.fromkeys(PIR_PROTOCOLS, Kind.PIR),
    **dict.fromkeys(STATS_PROTOCOLS, Kind.STATS),
    **dict.fromkeys(("vertical-lr", *HORIZONTAL_PROTOCOLS, "predict"), Kind.FL),
}


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


class SpecInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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


class TaskSpec(BaseModel):
    """The canonical description of a task; its keccak256 is anchored on chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    kind: TaskKind = "psi"
    protocol: TaskProtocol = "ecdh"
    requester: int = Field(ge=1)
    inputs: tuple[SpecInput, ...] = Field(min_length=2, max_length=MAX_STATS_PARTIES)
    dealer: int | None = Field(
        default=None, ge=1, description="statistics: the organisation dealing Beaver triples"
    )
    frac_bits: int = Field(
        default=16, ge=0, le=24, description="statistics: fixed-point fractional bits"
    )
    histogram_edges: tuple[float, ...] | None = Field(
        default=None, min_length=2, max_length=101, description="joint statistics: bin edges"
    )
    rounds: Rounds = None
    proximal_mu: ProximalMu = None
    buckets: Buckets = None
    output: Literal["requester", "both"] = "requester"
    service: str | None = Field(
        default=None, pattern=SERVICE_NAME_PATTERN, description="the provider's PSI service called"
    )
    nonce: str = Field(default_factory=lambda: secrets.token_hex(16), pattern=r"^[0-9a-f]{32}$")
    project: int | None = Field(
        default=None, ge=1, lt=2**63, description="the ProjectRegistry project the task belongs to"
    )

    @field_validator("inputs")
    @classmethod
    def _distinct_datasets(cls, inputs: tuple[SpecInput, ...]) -> tuple[SpecInput, ...]:
        if len({item.dataset.lower() for item in inputs}) != len(inputs):
            raise ValueError("inputs must name distinct datasets")
        return inputs

    @model_validator(mode="after")
    def _kind_fits(self) -> TaskSpec:
        if len({item.org for item in self.inputs}) != len(self.inputs):
            raise ValueError("each input comes from a different organisation")
        if self.buckets is not None and self.kind != "psi":
            raise ValueError("only a KKRT-PSI task takes buckets")
        if self.kind == "stats":
            self._check_stats()
            return self
        if self.kind == "fl":
            self._check_fl()
            return self
        if self.dealer is not None:
            raise ValueError("only statistics tasks have a dealer")
        three = self.protocol in ("intersection3", "union3")
        if len(self.inputs) != (3 if three else 2):
            raise ValueError(f"{self.protocol} takes {3 if three else 2} inputs")
        if self.kind == "psi":
            if self.protocol not in PSI_PROTOCOLS + SET_OPERATIONS:
                raise ValueError(
                    f"a set task runs one of {', '.join(PSI_PROTOCOLS + SET_OPERATIONS)}"
                )
            if any(item.value_column or item.features for item in self.inputs):
                raise ValueError("a set task returns no value column")
            if self.protocol in SET_OPERATIONS and (self.output != "requester" or self.service):
                raise ValueError(f"{self.protocol} answers the requester only")
            if self.buckets is not None and (self.protocol != "kkrt" or self.service):
                raise ValueError("only a KKRT-PSI task (not a service call) takes buckets")
        else:
            if self.protocol not in PIR_PROTOCOLS:
                raise ValueError(f"a PIR task runs {' or '.join(PIR_PROTOCOLS)}")
            if self.output != "requester" or self.service is not None:
                raise ValueError("a PIR task answers the requester only")
            holders = [item for item in self.inputs if item.org != self.requester]
            if len(holders) != 1 or holders[0].value_column is None:
                raise ValueError("a PIR task names one holder input with a value column")
        return self

    def _check_fl(self) -> None:
        if self.output != "requester" or self.service:
            raise ValueError("a federated-learning task answers the requester only")
        horizontal = self.protocol in HORIZONTAL_PROTOCOLS
        if self.proximal_mu is not None and not horizontal:
            raise ValueError("only horizontal FL takes proximal_mu")
        if self.rounds is not None and self.protocol == "predict":
            raise ValueError("a prediction takes no rounds")
        if horizontal:
            self._check_horizontal()
        elif self.protocol == "predict":
            self._check_predict()
        elif self.protocol == "vertical-lr":
            self._check_vertical()
        else:
            raise ValueError("a federated-learning task runs vertical-lr, horizontal-* or predict")

    def _check_vertical(self) -> None:
        if len(self.inputs) not in (2, 3):
            raise ValueError("vertical-lr aligns and trains two or three parties' columns")
        owners = {item.org for item in self.inputs}
        if self.requester not in owners or self.dealer is None or self.dealer in owners:
            raise ValueError("vertical-lr: the requester holds an input; a third org deals")
        for item in self.inputs:
            if not item.features:
                raise ValueError("every vertical-lr input names its feature columns")
            has_label = item.value_column is not None
            if has_label != (item.org == self.requester):
                raise ValueError("the requester's input, and only it, names the label column")

    def _check_horizontal(self) -> None:
        """The requester aggregates (and may hold an input too); every input is a client with
        the same number of feature columns and a label column."""
        if self.dealer is not None:
            raise ValueError("horizontal FL has no dealer")
        widths = {len(item.features or ()) for item in self.inputs}
        if 0 in widths or len(widths) != 1:
            raise ValueError("every horizontal FL input names the same number of feature columns")
        if any(item.value_column is None for item in self.inputs):
            raise ValueError("every horizontal FL input names its label column (value_column)")

    def _check_predict(self) -> None:
        """The requester's rows (id column + features) and one model input held by another org."""
        if self.dealer is not None or len(self.inputs) != 2:
            raise ValueError("a prediction task takes the requester's rows and one model")
        rows = [item for item in self.inputs if item.org == self.requester]
        models = [item for item in self.inputs if item.org != self.requester]
        if len(rows) != 1 or not rows[0].features or rows[0].value_column is not None:
            raise ValueError("the requester's input names its id column and feature columns")
        model = models[0]
        if model.column != MODEL_COLUMN or model.features or model.value_column:
            raise ValueError(f"the model input names only column {MODEL_COLUMN!r}")

    def _check_stats(self) -> None:
        if self.protocol not in STATS_PROTOCOLS or self.output != "requester" or self.service:
            raise ValueError(f"a statistics task runs one of {', '.join(STATS_PROTOCOLS)}")
        owners = {item.org for item in self.inputs}
        if self.requester not in owners:
            raise ValueError("the requester of a statistics task contributes an input too")
        if self.dealer is None or self.dealer in owners:
            raise ValueError("a statistics task names a dealer that holds none of the inputs")
        if self.protocol == "joint-stats":
            if any(item.value_column for item in self.inputs):
                raise ValueError("joint statistics read one numeric column per input")
            edges = self.histogram_edges
            if edges is not None and any(b <= a for a, b in pairwise(edges)):
                raise ValueError("histogram edges must increase")
            return
        if self.histogram_edges is not None:
            raise ValueError("only joint statistics take histogram edges")
        # multi-lending: every bank names its customer and amount columns; the requester's own
        # input holds the customer (and, for "exceeds", the limit) and never leaves its node
        banks = [item for item in self.inputs if item.org != self.requester]
        if any(item.value_column is None for item in banks):
            raise ValueError("every bank's input names an amount column (value_column)")

    @property
    def participants(self) -> list[int]:
        """The requester first, then every other input owner, each once, then the dealer."""
        ordered = [self.requester]
        for item in self.inputs:
            if item.org not in ordered:
                ordered.append(item.org)
        if self.dealer is not None:
            ordered.append(self.dealer)
        return ordered

    def peers_of(self, org: int) -> list[int]:
        """The participants ``org`` opens a channel to: all others, except that horizontal FL
        is a star around the requester (clients talk only to the aggregator)."""
        if self.protocol in HORIZONTAL_PROTOCOLS and org != self.requester:
            return [self.requester]
        return [other for other in self.participants if other != org]

    def canonical_json(self) -> bytes:
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()

    @property
    def hash(self) -> bytes:
        return keccak256(self.canonical_json())

    @classmethod
    def parse_canonical(cls, raw: bytes) -> TaskSpec:
        return cls.model_validate_json(raw)
