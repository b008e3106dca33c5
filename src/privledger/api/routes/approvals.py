"""Approval requests: a task using this organisation's data without a grant waits for a decision."""

from __future__ import annotations

from fastapi import APIRouter

from privledger.api.deps import DataOwner, NodeDep, SessionDep, TaskId
from privledger.api.errors import parse_hex32
from privledger.api.schemas import ApprovalIn, ApprovalOut
from privledger.store.assets import held_asset_ids
from privledger.store.events import events_named

router = APIRouter(prefix="/approvals", tags=["approvals"])


@router.get("", response_model=list[ApprovalOut])
def list_approvals(_caller: DataOwner, node: NodeDep, session: SessionDep) -> list[ApprovalOut]:
    """Every approval request on this node's datasets, with its current status."""
    node.indexer.sync()
    ours = held_asset_ids(session)
    requests = [
        e for e in events_named(session, ["ApprovalRequested"]) if e.args["datasetId"] in ours
    ]
    return [
        ApprovalOut(
            task_id=event.args["taskId"],
            dataset=event.args["datasetId"],
            requester_org=event.args["requesterOrg"],
            status=node.ledger.grants.approval_of(
                event.args["taskId"], parse_hex32(event.args["datasetId"], "dataset id")
            ).name.lower(),
        )
        for event in requests
    ]


@router.post("/{task_id}/{dataset_id}", response_model=ApprovalOut)
def decide(
    task_id: TaskId, dataset_id: str, body: ApprovalIn, caller: DataOwner, node: NodeDep
) -> ApprovalOut:
    """Approve or reject the use of a dataset by a pending task (signed on chain)."""
    dataset = parse_hex32(dataset_id, "dataset id")
    ledger = node.ledger_for(caller.user.address)
    if body.decision == "approve":
        ledger.grants.approve(task_id, dataset)
    else:
        ledger.grants.reject(task_id, dataset)
    task = ledger.tasks.get_task(task_id)
    return ApprovalOut(
        task_id=task_id,
        dataset="0x" + dataset.hex(),
        requester_org=task.requester_org,
        status=ledger.grants.approval_of(task_id, dataset).name.lower(),
    )
