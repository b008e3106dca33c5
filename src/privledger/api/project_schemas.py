"""Request and response bodies of the projects (F14) and workflow (F15) routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from privledger.api.schemas import Body, Hex32

MAX_NAME_BYTES = 100  # ProjectRegistry.MAX_NAME_BYTES
MemberStatusName = Literal["member", "invited"]
WorkflowKind = Literal["task_approval", "project_invitation"]
WorkflowStatus = Literal[
    "pending", "approved", "rejected", "accepted", "declined", "withdrawn", "closed"
]


class ProjectIn(Body):
    name: str = Field(min_length=1, max_length=MAX_NAME_BYTES)

    @field_validator("name")
    @classmethod
    def _fits_on_chain(cls, name: str) -> str:
        if len(name.encode()) > MAX_NAME_BYTES:
            raise ValueError(f"a project name is at most {MAX_NAME_BYTES} bytes of UTF-8")
        return name


class InvitationIn(Body):
    org: int = Field(ge=1, lt=2**63, description="the organisation invited")


class InvitationDecisionIn(Body):
    decision: Literal["accept", "decline"]


class ProjectDatasetIn(Body):
    dataset: str = Hex32


class ProjectMemberOut(Body):
    org_id: int
    name: str
    status: MemberStatusName
    owner: bool


class ProjectDatasetOut(Body):
    dataset_id: str
    owner_org: int


class ProjectTaskOut(Body):
    task_id: int
    status: str
    kind: str
    protocol: str
    requester_org: int
    local_state: str


class ProjectSummary(Body):
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


class WorkflowItem(Body):
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
