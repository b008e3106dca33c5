"""Interop API, jobs (after BFIA's control layer, ``/v1/interconn/schedule/job/...``): submit a
task, follow it until it is settled or failed, fetch the result. A job is a task on the ledger:
its id is the task id on chain, its status the on-chain status in upper case (SUBMITTED,
AUTHORISED, RUNNING, COMPLETED, SETTLED, FAILED); authorisation comes from the grants issued by
dataset authorisations (or the owners' approvals when there is none)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from privledger.api.deps import Member, NodeDep, Operator, SessionDep
from privledger.api.routes import tasks
from privledger.api.routes.interop_common import Envelope, Wire, ok
from privledger.api.routes.interop_datasets import DatasetHex
from privledger.api.schemas import TaskIn, TaskInputIn
from privledger.node.spec import TaskKind, TaskProtocol

router = APIRouter(prefix="/schedule/job", tags=["interop: jobs"])

JobId = Annotated[int, Query(ge=1, lt=2**63, description="the task id on chain")]


class JobInput(Wire):
    dataset_id: DatasetHex
    column: str = Field(min_length=1, max_length=200)


class JobCreate(Wire):
    kind: TaskKind = "psi"
    protocol: TaskProtocol = "ecdh"
    inputs: list[JobInput] = Field(min_length=2, max_length=8)
    output: Literal["requester", "both"] = "requester"
    fee_wei: int = Field(default=0, ge=0, lt=2**96)
    deadline_s: int = Field(default=3_600, ge=60, le=30 * 86_400)


class JobCreated(Wire):
    job_id: int
    status: str


class JobStatus(Wire):
    job_id: int
    status: str
    spec_hash: str
    requester_inst_id: int
    participants: list[int]
    inputs: list[str]
    fee: int
    failure_reason: int
    local_state: str | None
    local_failure: str | None


class JobResult(Wire):
    job_id: int
    items: list[str]
    salt: str
    result_digest: str
    transcript_hash: str


@router.post("/create", response_model=Envelope[JobCreated])
def create(
    body: JobCreate, caller: Operator, node: NodeDep, session: SessionDep
) -> Envelope[JobCreated]:
    """Submit a two-party (or multi-party) job whose inputs are one dataset of this organisation
    and the partners' authorised datasets; the spec's hash and the fee go on chain."""
    task = TaskIn(
        kind=body.kind,
        protocol=body.protocol,
        inputs=[TaskInputIn(dataset=item.dataset_id, column=item.column) for item in body.inputs],
        output=body.output,
        fee_wei=body.fee_wei,
        deadline_s=body.deadline_s,
    )
    spec = tasks.build_spec(node, task)
    planned = tasks.plan_submission(
        node, caller, session, spec, fee_wei=body.fee_wei, deadline_s=body.deadline_s
    )
    out = tasks.submit_planned(node, session, planned)
    return ok(JobCreated(job_id=out.task_id, status=out.status.upper()))


@router.get("/query", response_model=Envelope[JobStatus])
def query(
    job_id: JobId, _caller: Member, node: NodeDep, session: SessionDep
) -> Envelope[JobStatus]:
    """A job's status as recorded on chain, and this node's part in it."""
    out = tasks.task_out(node, node.ledger.tasks.get_task(job_id), session)
    return ok(
        JobStatus(
            job_id=out.task_id,
            status=out.status.upper(),
            spec_hash=out.spec_hash,
            requester_inst_id=out.requester_org,
            participants=out.participants,
            inputs=out.inputs,
            fee=out.fee,
            failure_reason=out.failure_reason,
            local_state=out.local_state,
            local_failure=out.local_failure,
        )
    )


@router.get("/result", response_model=Envelope[JobResult])
def result(job_id: JobId, caller: Operator, session: SessionDep) -> Envelope[JobResult]:
    """The job's output for an output recipient, with the salt opening its anchored digest."""
    out = tasks.get_result(job_id, caller, session)
    return ok(
        JobResult(
            job_id=out.task_id,
            items=out.items,
            salt=out.salt,
            result_digest=out.result_digest,
            transcript_hash=out.transcript_hash,
        )
    )
