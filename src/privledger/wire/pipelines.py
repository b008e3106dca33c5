"""Pipelines (F25): a job file describing a DAG of steps, and a pipeline's record as the node keeps
it. The job document is checked alike by the node (``POST /pipelines``) and the SDK's runner
(:mod:`privledger.sdk.pipeline`), so both refuse the same files.

A step is one of:

- a **task** step: a task body as ``POST /tasks`` takes it, submitted by the pipeline's runner
  when every step it comes ``after`` has finished; with ``derive``, once the task settled, every
  participant's aligned rows become derived datasets (the requester's own, and each partner's as
  its owner's grant consents: docs/pipelines.md);
- a **model** step: registers the model a training step produced (``POST /models``).

A string value of a step that is exactly ``${name}`` is replaced when the step runs: ``${var}``
by the job's (or the command line's) variable ``var``; ``${step.task}`` by that step's task id;
``${step.model}`` by the model id a model step registered; ``${step.derived.ORG}`` by the id of
the dataset organisation ``ORG`` (its name or id; ``requester`` for the runner's own, ``partner``
for the other one of a two-party step) derived in a task step with ``derive``. A step may refer
only to steps it comes after, directly or not.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, JsonValue, model_validator

from privledger.wire.body import Body, Reply

STEP_ID = r"^[a-z][a-z0-9_-]{0,39}$"
REFERENCE = re.compile(r"^\$\{([A-Za-z0-9_.-]+)\}$")
MAX_STEPS = 64


class DeriveIn(Body):
    """Derived datasets of a set task step's aligned rows."""

    upstream_bps: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="the share of what the requester's own derived dataset earns that goes to "
        "its parents' owners (a partner's follows its grant's terms)",
    )


class ModelStepIn(Body):
    """A trained model registered as an asset (``POST /models``, which checks the values)."""

    task: str | int = Field(description="the training task: ${step.task}")
    name: str = Field(min_length=1, max_length=100, description="the model's name, or ${var}")
    unit_price: str | int = Field(default=0, description="wei per use, or ${var}")
    upstream_bps: str | int = Field(
        default=0, description="the share passed to the training data's owners, or ${var}"
    )


class StepIn(Body):
    """One step of a job: a task (``task``) or a model registration (``model``)."""

    id: str = Field(pattern=STEP_ID, description="the step's name, unique in the job")
    after: list[str] = Field(default=[], max_length=MAX_STEPS, description="steps to wait for")
    task: dict[str, JsonValue] | None = Field(
        default=None, description="a task body as POST /tasks takes it, with ${...} references"
    )
    derive: DeriveIn | None = Field(
        default=None, description="register every participant's aligned rows once it settled"
    )
    model: ModelStepIn | None = None

    @model_validator(mode="after")
    def _one_action(self) -> StepIn:
        if (self.task is None) == (self.model is None):
            raise ValueError(f"step {self.id}: a step has a task or a model, not both or neither")
        if self.derive is not None and self.task is None:
            raise ValueError(f"step {self.id}: derive belongs to a task step")
        return self

    @property
    def kind(self) -> Literal["task", "model"]:
        return "task" if self.task is not None else "model"

    def references(self) -> list[str]:
        """Every ``${...}`` name in the step's values."""
        found: list[str] = []
        _collect(self.task if self.task is not None else self.model_dump(), found)
        return found


class JobIn(Body):
    """A pipeline's job file."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = Field(default="", max_length=2_000)
    vars: dict[str, JsonValue] = Field(default={}, description="defaults of ${var} references")
    steps: list[StepIn] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _a_dag(self) -> JobIn:
        ids = [step.id for step in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        known = set(ids)
        for step in self.steps:
            unknown = sorted(set(step.after) - known)
            if unknown:
                raise ValueError(f"step {step.id} comes after unknown steps {unknown}")
        order = self.order()  # raises on a cycle
        ancestors: dict[str, set[str]] = {}
        for step in order:
            ancestors[step.id] = set(step.after).union(*(ancestors[a] for a in step.after))
            for name in step.references():
                head, _, rest = name.partition(".")
                if not rest:
                    continue  # a variable: given at run time if not here
                if head not in ancestors[step.id]:
                    raise ValueError(f"step {step.id} refers to {name}, not a step it comes after")
                if rest not in ("task", "model") and not rest.startswith("derived."):
                    raise ValueError(f"step {step.id}: unknown reference {name}")
        return self

    def order(self) -> list[StepIn]:
        """The steps in an order where each comes after those it waits for (the file's order
        among steps free to run)."""
        done: set[str] = set()
        ordered: list[StepIn] = []
        pending = list(self.steps)
        while pending:
            ready = [step for step in pending if set(step.after) <= done]
            if not ready:
                raise ValueError(f"the steps {[s.id for s in pending]} wait for each other")
            for step in ready:
                ordered.append(step)
                done.add(step.id)
            pending = [step for step in pending if step.id not in done]
        return ordered


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        match = REFERENCE.match(value)
        if match:
            found.append(match.group(1))
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


class DerivedRef(Reply):
    """A dataset a participant derived in a step."""

    org_id: int
    org: str
    dataset_id: str
    row_count: int
    grant_id: str | None = None


StepState = Literal["waiting", "running", "settled", "failed", "done"]


class StepRecordIn(Body):
    """What a pipeline's runner reports of one step (``PUT /pipelines/{id}/steps/{step}``)."""

    task_id: int | None = Field(default=None, ge=1, lt=2**63)
    model_id: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{64}$")
    derived: list[DerivedRef] | None = None
    error: str | None = Field(default=None, max_length=2_000)


class StepOut(Reply):
    id: str
    kind: Literal["task", "model"]
    after: list[str]
    protocol: str | None = None
    state: StepState
    task_id: int | None = None
    task_status: str | None = Field(default=None, description="the task's status on chain")
    attempts: int = Field(default=0, description="tasks submitted for the step")
    model_id: str | None = None
    derived: list[DerivedRef] = Field(default_factory=list)
    error: str | None = None


class PipelineOut(Reply):
    pipeline_id: int
    name: str
    description: str
    job_hash: str = Field(description="sha256 of the job document as submitted (canonical JSON)")
    created_by: str
    created_at: datetime
    state: StepState
    steps: list[StepOut]
    job: dict[str, JsonValue]
