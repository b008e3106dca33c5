"""Approval requests: a task using this organisation's data without a grant waits for a decision."""

from __future__ import annotations

from fastapi import APIRouter

from privledger.api.deps import DataOwner, NodeDep, SessionDep, TaskId
from privledger.api.errors import parse_hex32
from privledger.api.schemas import ApprovalIn, ApprovalOut
from privledger.node.context import NodeContext
from privledger.node.spec import PROTOCOL_IDS
from privledger.store.assets import held_asset_ids
from privledger.store.events import events_named

router = APIRouter(prefix="/approvals", tags=["approvals"])
PROTOCOL_NAMES = {number: name for name, number in PROTOCOL_IDS.items()}


@router.get("", response_model=list[ApprovalOut])
def list_approvals(_caller: DataOwner, node: NodeDep, session: SessionDep) -> list[ApprovalOut]:
    """Every approval request on this node's datasets, with its current status."""
    node.indexer.sync()
    ours = held_asset_ids(session)
    requests = [
        e for e in events_named(session, ["ApprovalRequested"]) if e.args["datasetId"] in ours
    ]
    return [
        approval_out(node, event.args["taskId"], parse_hex32(event.args["datasetId"], "dataset id"))
        for event in requests
    ]


def approval_out(node: NodeContext, task_id: int, dataset: bytes) -> ApprovalOut:
    """A request as the chain has it: the task's protocol and fee beside the decision."""
    task = node.ledger.tasks.get_task(task_id)
    return ApprovalOut(
        task_id=task_id,
        dataset="0x" + dataset.hex(),
        requester_org=task.requester_org,
        status=node.ledger.grants.approval_of(task_id, dataset).name.lower(),
        protocol=PROTOCOL_NAMES.get(task.protocol, str(task.protocol)),
        fee_wei=task.fee,
    )


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
    return approval_out(node, task_id, dataset)
