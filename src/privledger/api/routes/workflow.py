"""Workflow (F15): what waits for this organisation's decision, and what it asked of others.

Both lists are derived from the chain events in the node's index, so they agree with the ledger:
a task input without a grant asks its owner for an approval (``ApprovalRequested``), a project
invites an organisation (``ProjectMemberInvited``); later events settle each request.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter
from sqlmodel import Session

from privledger.api.deps import Member, NodeDep, SessionDep
from privledger.api.project_schemas import WorkflowItem, WorkflowStatus
from privledger.api.routes.projects import project_events
from privledger.store.events import events_named

router = APIRouter(prefix="/workflow", tags=["workflow"])
K = TypeVar("K")

# an event that settles a request -> the request's new status
APPROVAL_OUTCOMES: dict[str, WorkflowStatus] = {
    "InputApproved": "approved",
    "InputRejected": "rejected",
    "TaskFailed": "closed",  # another input was rejected, or the task failed otherwise
    "TaskExpired": "closed",
}
INVITATION_OUTCOMES: dict[str, WorkflowStatus] = {
    "ProjectInvitationAccepted": "accepted",
    "ProjectInvitationDeclined": "declined",
    "ProjectInvitationWithdrawn": "withdrawn",
    "ProjectClosed": "closed",
}


def approval_requests(session: Session) -> list[WorkflowItem]:
    """Every approval request on chain, with its status now."""
    owners = {
        event.args["datasetId"]: event.args["ownerOrg"]
        for event in events_named(session, ["DatasetRegistered"])
    }
    found: list[WorkflowItem] = []
    waiting: dict[int, dict[str, WorkflowItem]] = {}  # task -> dataset -> pending request
    for event in events_named(session, ["ApprovalRequested", *APPROVAL_OUTCOMES]):
        requests = waiting.setdefault(event.args["taskId"], {})
        if event.event != "ApprovalRequested":
            settle(requests, event.args.get("datasetId"), APPROVAL_OUTCOMES[event.event])
            continue
        dataset = event.args["datasetId"]
        requests[dataset] = WorkflowItem(
            kind="task_approval",
            status="pending",
            from_org=event.args["requesterOrg"],
            to_org=owners.get(dataset, 0),
            task_id=event.args["taskId"],
            dataset=dataset,
            block_number=event.block_number,
            tx_hash=event.tx_hash,
        )
        found.append(requests[dataset])
    return found


def invitations(session: Session) -> list[WorkflowItem]:
    """Every project invitation on chain (an organisation may be invited again after it
    declined or left), with its status now."""
    created = {
        event.args["projectId"]: event.args for event in project_events(session, ["ProjectCreated"])
    }
    found: list[WorkflowItem] = []
    waiting: dict[int, dict[int, WorkflowItem]] = {}  # project -> org -> pending invitation
    for event in project_events(session, ["ProjectMemberInvited", *INVITATION_OUTCOMES]):
        project_id = event.args["projectId"]
        requests = waiting.setdefault(project_id, {})
        if event.event != "ProjectMemberInvited":
            settle(requests, event.args.get("org"), INVITATION_OUTCOMES[event.event])
            continue
        project = created.get(project_id, {})
        org = event.args["org"]
        requests[org] = WorkflowItem(
            kind="project_invitation",
            status="pending",
            from_org=project.get("ownerOrg", 0),
            to_org=org,
            project_id=project_id,
            project_name=project.get("name"),
            block_number=event.block_number,
            tx_hash=event.tx_hash,
        )
        found.append(requests[org])
    return found


def settle(waiting: dict[K, WorkflowItem], key: K | None, outcome: WorkflowStatus) -> None:
    """Settle the pending request ``key``, or every pending one when the outcome closes them all
    (a failed or expired task, a closed project)."""
    settled = list(waiting) if outcome == "closed" else [key] if key in waiting else []
    for settled_key in settled:
        waiting.pop(settled_key).status = outcome


def all_requests(node: NodeDep, session: Session) -> list[WorkflowItem]:
    node.indexer.sync()  # a request made a moment ago must be seen
    requests = approval_requests(session) + invitations(session)
    return sorted(requests, key=lambda item: item.block_number, reverse=True)


@router.get("/inbox", response_model=list[WorkflowItem])
def inbox(_caller: Member, node: NodeDep, session: SessionDep) -> list[WorkflowItem]:
    """Requests waiting for this organisation's decision, newest first: approvals of tasks that
    use its datasets (`POST /approvals/...`) and invitations to projects
    (`POST /projects/{id}/invitation`)."""
    return [
        item
        for item in all_requests(node, session)
        if item.to_org == node.org_id and item.status == "pending"
    ]


@router.get("/outbox", response_model=list[WorkflowItem])
def outbox(_caller: Member, node: NodeDep, session: SessionDep) -> list[WorkflowItem]:
    """Requests this organisation made of others, newest first, each with its status now."""
    return [item for item in all_requests(node, session) if item.from_org == node.org_id]
