"""Projects (F14) and the workflow (F15) of requests between organisations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from privledger.wire.body import Reply

MemberStatusName = Literal["member", "invited"]
WorkflowKind = Literal["task_approval", "project_invitation"]
WorkflowStatus = Literal[
    "pending", "approved", "rejected", "accepted", "declined", "withdrawn", "closed"
]


class ProjectMemberOut(Reply):
    org_id: int
    name: str
    status: MemberStatusName
    owner: bool


class ProjectDatasetOut(Reply):
    dataset_id: str
    owner_org: int


class ProjectTaskOut(Reply):
    task_id: int
    status: str
    kind: str
    protocol: str
    requester_org: int
    local_state: str


class ProjectSummary(Reply):
    project_id: int
    name: str
    owner_org: int
    status: Literal["active", "closed"]
    created_at: int
    my_status: MemberStatusName


class ProjectOut(ProjectSummary):
    members: list[ProjectMemberOut]
    datasets: list[ProjectDatasetOut]
    tasks: list[ProjectTaskOut] = Field(
        description="tasks tagged with the project that this node took part in"
    )


class WorkflowItem(Reply):
    """A request from one organisation to another, as the chain recorded it."""

    kind: WorkflowKind
    status: WorkflowStatus
    from_org: int = Field(description="who asked: the task's requester, the project's owner")
    to_org: int = Field(description="who decides: the dataset's owner, the invited organisation")
    task_id: int | None = None
    dataset: str | None = None
    project_id: int | None = None
    project_name: str | None = None
    block_number: int = Field(description="block of the request")
    tx_hash: str = Field(description="transaction of the request")
