"""Pipelines (F25, docs/pipelines.md): the record of a job whose steps are tasks on chain, and the
derived datasets that carry one step's aligned rows into the next."""

from __future__ import annotations

from fastapi import APIRouter, Path

from privledger.api.deps import DataOwner, Member, NodeDep, Operator, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
from privledger.evm.errors import ChainRevert
from privledger.node import pipelines
from privledger.node.datasets import DatasetFileError
from privledger.node.derived import DeriveError, NotTakenPart, ask_partner, derive_own
from privledger.node.spec import parse_canonical
from privledger.store.models import LocalTask, Pipeline
from privledger.wire.assets import DerivedOut
from privledger.wire.pipelines import STEP_ID, DeriveIn, JobIn, PipelineOut, StepRecordIn

router = APIRouter(tags=["pipelines"])
PipelineId = Path(ge=1, lt=2**63, description="the pipeline's id on this node")


@router.post("/tasks/{task_id}/derived", response_model=list[DerivedOut])
def derive_task(
    task_id: TaskId, body: DeriveIn, caller: DataOwner, node: NodeDep, session: SessionDep
) -> list[DerivedOut]:
    """The derived datasets of a settled set task this organisation requested, whose result both
    parties learned: this node's aligned rows, registered in the caller's name, and each
    partner's, which its node registers and grants to this organisation when the owner's grant
    consents (terms' ``derive``). Asking again answers the same datasets."""
    local = session.get(LocalTask, task_id)
    if local is None or local.spec_json is None:
        raise not_found(f"task {task_id} on this node")
    spec = parse_canonical(local.spec_json.encode())
    try:
        derived = [
            derive_own(
                node,
                node.ledger_for(caller.user.address),
                task_id=task_id,
                upstream_bps=body.upstream_bps,
            )
        ]
        for org in spec.participants:
            if org != node.org_id and org in spec.owners:
                derived.append(ask_partner(node, task_id, org))
    except NotTakenPart as exc:
        raise not_found(str(exc)) from exc
    except (DeriveError, ChainRevert, DatasetFileError) as exc:
        raise ApiError(409, "not_derivable", str(exc)) from exc
    return derived


@router.post("/pipelines", response_model=PipelineOut, status_code=201)
def create_pipeline(
    body: JobIn, caller: Operator, node: NodeDep, session: SessionDep
) -> PipelineOut:
    """Record a pipeline's job (its DAG checked: unique step ids, known predecessors, no cycle,
    references only to earlier steps) before its runner submits the first step."""
    row = pipelines.create(session, body, caller.user.name)
    return pipelines.view(node, row)


@router.get("/pipelines", response_model=list[PipelineOut])
def list_pipelines(_caller: Member, node: NodeDep, session: SessionDep) -> list[PipelineOut]:
    """Every pipeline recorded on this node, newest first, each step with its task's status."""
    return [pipelines.view(node, row) for row in pipelines.pipelines(session)]


@router.get("/pipelines/{pipeline_id}", response_model=PipelineOut)
def show_pipeline(
    _caller: Member,
    node: NodeDep,
    session: SessionDep,
    pipeline_id: int = PipelineId,
) -> PipelineOut:
    """One pipeline: its job and each step's state (a task step's from its task on chain)."""
    return pipelines.view(node, _pipeline(session, pipeline_id))


@router.put("/pipelines/{pipeline_id}/steps/{step}", response_model=PipelineOut)
def record_step(
    body: StepRecordIn,
    _caller: Operator,
    node: NodeDep,
    session: SessionDep,
    pipeline_id: int = PipelineId,
    step: str = Path(pattern=STEP_ID, description="the step's id in the job"),
) -> PipelineOut:
    """What the runner did for a step: the task it submitted (a new one is another attempt), the
    model it registered, the datasets derived, or the error that stopped it."""
    row = _pipeline(session, pipeline_id)
    try:
        row = pipelines.record_step(session, row, step, body)
    except pipelines.UnknownStep as exc:
        raise not_found(f"step {step!r} of pipeline {pipeline_id}") from exc
    return pipelines.view(node, row)


def _pipeline(session: SessionDep, pipeline_id: int) -> Pipeline:
    row = session.get(Pipeline, pipeline_id)
    if row is None:
        raise not_found(f"pipeline {pipeline_id}")
    return row
