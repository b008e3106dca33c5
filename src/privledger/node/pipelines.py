"""Pipelines (F25) as this node records them: the job document its runner submitted
(:mod:`privledger.wire.pipelines`) and, per step, what the runner reported. The state of a task
step is its task's status on chain, so a runner cannot make a failed task look settled; only
the bookkeeping around it (which task belongs to which step, the derived datasets, the model)
comes from the runner, which holds an operator token of this organisation."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from sqlmodel import Session, col, select

from privledger.evm.contracts import TaskStatus
from privledger.node.context import NodeContext
from privledger.store.models import Pipeline, utc_now
from privledger.wire.pipelines import (
    DerivedRef,
    JobIn,
    PipelineOut,
    StepIn,
    StepOut,
    StepRecordIn,
    StepState,
)

_REPORTS = threading.Lock()  # one step's report written at a time (see record_step)

TASK_STATES: dict[TaskStatus, StepState] = {
    TaskStatus.SUBMITTED: "running",
    TaskStatus.AUTHORISED: "running",
    TaskStatus.RUNNING: "running",
    TaskStatus.COMPLETED: "running",  # settles next, then its datasets are derived
    TaskStatus.SETTLED: "settled",
    TaskStatus.FAILED: "failed",
}


class UnknownStep(KeyError):
    """The pipeline has no step of that name."""


def job_document(job: JobIn) -> dict[str, Any]:
    return job.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def create(session: Session, job: JobIn, created_by: str) -> Pipeline:
    document = job_document(job)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    row = Pipeline(
        name=job.name,
        job=document,
        job_hash="0x" + hashlib.sha256(canonical.encode()).hexdigest(),
        created_by=created_by,
        steps={step.id: {"attempts": 0} for step in job.steps},
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def record_step(session: Session, row: Pipeline, step: str, report: StepRecordIn) -> Pipeline:
    """Keep what the runner reports of ``step``: a new task id counts as another attempt and
    clears what the step's earlier task left (its derived datasets, its error). Steps running at
    once report at once: the row is read again and written under a lock (this process's, and
    the row's on PostgreSQL, where several API processes serve), so no report is lost."""
    if step not in row.steps:
        raise UnknownStep(step)
    with _REPORTS:
        session.refresh(row, with_for_update=True)
        return _record(session, row, step, report)


def _record(session: Session, row: Pipeline, step: str, report: StepRecordIn) -> Pipeline:
    entry = dict(row.steps[step])
    if report.task_id is not None and report.task_id != entry.get("taskId"):
        entry = {"attempts": entry.get("attempts", 0) + 1, "taskId": report.task_id}
    if report.model_id is not None:
        entry["modelId"] = report.model_id
    if report.derived is not None:
        entry["derived"] = [item.model_dump(mode="json", by_alias=True) for item in report.derived]
    entry["error"] = report.error
    row.steps = {**row.steps, step: entry}
    row.updated_at = utc_now()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def pipelines(session: Session) -> list[Pipeline]:
    return list(session.exec(select(Pipeline).order_by(col(Pipeline.pipeline_id).desc())).all())


def view(node: NodeContext, row: Pipeline) -> PipelineOut:
    """The pipeline with each step's state: a task step's from its task on chain."""
    job = JobIn.model_validate(row.job)
    steps = [_step_out(node, step, row.steps.get(step.id, {})) for step in job.order()]
    states = {step.state for step in steps}
    state: StepState = (
        "failed"
        if "failed" in states
        else "done"
        if states <= {"settled", "done"}
        else "running"
        if states & {"running", "settled", "done"}
        else "waiting"
    )
    assert row.pipeline_id is not None
    return PipelineOut(
        pipeline_id=row.pipeline_id,
        name=row.name,
        description=job.description,
        job_hash=row.job_hash,
        created_by=row.created_by,
        created_at=row.created_at,
        state=state,
        steps=steps,
        job=row.job,
    )


def _step_out(node: NodeContext, step: StepIn, entry: dict[str, Any]) -> StepOut:
    task_id = entry.get("taskId")
    derived = [DerivedRef.model_validate(item) for item in entry.get("derived") or []]
    task_status = None
    if step.task is not None:
        protocol = step.task.get("protocol")
        if task_id is None:
            state: StepState = "failed" if entry.get("error") else "waiting"
        else:
            status = node.ledger.tasks.get_task(task_id).status
            task_status = status.name.lower()
            state = TASK_STATES.get(status, "running")
            if state == "settled" and step.derive is not None and not derived:
                state = "failed" if entry.get("error") else "running"
    else:
        protocol = None
        model_id = entry.get("modelId")
        state = "done" if model_id else "failed" if entry.get("error") else "waiting"
    return StepOut(
        id=step.id,
        kind=step.kind,
        after=step.after,
        protocol=protocol if isinstance(protocol, str) else None,
        state=state,
        task_id=task_id,
        task_status=task_status,
        attempts=int(entry.get("attempts", 0)),
        model_id=entry.get("modelId"),
        derived=derived,
        error=entry.get("error"),
    )
