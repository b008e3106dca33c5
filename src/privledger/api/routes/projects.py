"""Projects (F14): organisations, their datasets and the tasks tagged with a project.

The project, its members and datasets live in the ProjectRegistry contract; membership is an
invitation the owner organisation sends and the invited organisation accepts or declines. An
organisation that is neither a member nor invited sees nothing of a project: every route answers
404 for it, as for a project that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from sqlmodel import Session, col, select

from privledger.api.deps import Caller, DataOwner, Member, NodeDep, SessionDep, require
from privledger.api.errors import ApiError, not_found, parse_hex32
from privledger.api.project_schemas import (
    InvitationDecisionIn,
    InvitationIn,
    ProjectDatasetIn,
    ProjectDatasetOut,
    ProjectIn,
    ProjectMemberOut,
    ProjectOut,
    ProjectSummary,
    ProjectTaskOut,
)
from privledger.evm.contracts import MemberStatus, Project, ProjectStatus, Role
from privledger.node.context import NodeContext
from privledger.node.projects import project_violation
from privledger.node.spec import TaskSpec
from privledger.store.events import events_named
from privledger.store.models import ChainEvent, LocalTask

router = APIRouter(prefix="/projects", tags=["projects"])

Manager = Annotated[Caller, Depends(require(Role.OPERATOR, Role.ORG_ADMIN))]
ProjectId = Annotated[int, Path(ge=1, lt=2**63, description="project id on chain")]
MemberOrgId = Annotated[int, Path(ge=1, lt=2**63, description="organisation id on chain")]
STATUS_NAMES = {MemberStatus.MEMBER: "member", MemberStatus.INVITED: "invited"}


def project_events(
    session: Session, names: Sequence[str], *, project_id: int | None = None
) -> list[ChainEvent]:
    """Indexed ProjectRegistry events named one of ``names``, optionally of one project."""
    query = select(ChainEvent).where(col(ChainEvent.event).in_(names))
    if project_id is not None:
        query = query.where(ChainEvent.args["projectId"].as_integer() == project_id)
    query = query.order_by(col(ChainEvent.block_number), col(ChainEvent.log_index))
    return list(session.exec(query))


def org_names(session: Session) -> dict[int, str]:
    return {e.args["orgId"]: e.args["name"] for e in events_named(session, ["OrgRegistered"])}


def visible_project(node: NodeContext, project_id: int) -> tuple[Project, MemberStatus]:
    """The project and this org's place in it; 404 unless this org is a member or invited."""
    mine = node.ledger.projects.status_of(project_id, node.org_id)
    if mine is MemberStatus.NONE:
        raise not_found(f"project {project_id}")
    return node.ledger.projects.get_project(project_id), mine


def summary(project: Project, mine: MemberStatus) -> ProjectSummary:
    return ProjectSummary(
        project_id=project.project_id,
        name=project.name,
        owner_org=project.owner_org,
        status="active" if project.status is ProjectStatus.ACTIVE else "closed",
        created_at=project.created_at,
        my_status=STATUS_NAMES[mine],
    )


def tagged_tasks(node: NodeContext, session: Session, project_id: int) -> list[ProjectTaskOut]:
    """Tasks of this node whose spec names the project (canonical JSON: sorted keys, compact)."""
    rows = session.exec(
        select(LocalTask)
        .where(col(LocalTask.spec_json).contains(f'"project":{project_id},'))
        .order_by(col(LocalTask.task_id))
    ).all()
    found = []
    for row in rows:
        spec = json.loads(row.spec_json or "{}")
        if spec.get("project") != project_id:
            continue
        task = node.ledger.tasks.get_task(row.task_id)
        found.append(
            ProjectTaskOut(
                task_id=row.task_id,
                status=task.status.name.lower(),
                kind=spec["kind"],
                protocol=spec["protocol"],
                requester_org=task.requester_org,
                local_state=row.state,
            )
        )
    return found


def project_out(node: NodeContext, session: Session, project_id: int) -> ProjectOut:
    project, mine = visible_project(node, project_id)
    registry = node.ledger.projects
    node.indexer.sync()  # names of organisations registered a moment ago
    names = org_names(session)
    members = [
        ProjectMemberOut(
            org_id=org,
            name=names.get(org, ""),
            status=STATUS_NAMES[status],
            owner=org == project.owner_org,
        )
        for org, status in registry.members_of(project_id).items()
    ]
    datasets = [
        ProjectDatasetOut(
            dataset_id="0x" + dataset.hex(),
            owner_org=node.ledger.data.get_dataset(dataset).owner_org,
        )
        for dataset in registry.datasets_of(project_id)
    ]
    return ProjectOut(
        **summary(project, mine).model_dump(),
        members=members,
        datasets=datasets,
        tasks=tagged_tasks(node, session, project_id),
    )


def check_task_project(node: NodeContext, spec: TaskSpec) -> None:
    """A task tagged with a project runs only inside it: the project is active, every participant
    is a member and every input is one of its datasets. An org outside the project gets a 404."""
    if spec.project is None:
        return
    _project, mine = visible_project(node, spec.project)
    if mine is not MemberStatus.MEMBER:
        raise ApiError(
            400, "invalid_project", f"this organisation is not yet a member of {spec.project}"
        )
    problem = project_violation(node.ledger.projects, spec)
    if problem is not None:
        raise ApiError(400, "invalid_project", problem)


@router.post("", response_model=ProjectOut, status_code=201)
def create_project(
    body: ProjectIn, caller: Manager, node: NodeDep, session: SessionDep
) -> ProjectOut:
    """Create a project owned by this organisation, which becomes its first member."""
    project_id = node.ledger_for(caller.user.address).projects.create_project(body.name)
    return project_out(node, session, project_id)


@router.get("", response_model=list[ProjectSummary])
def list_projects(_caller: Member, node: NodeDep, session: SessionDep) -> list[ProjectSummary]:
    """Projects this organisation is a member of or invited to, newest first."""
    node.indexer.sync()
    candidates = {
        event.args["projectId"]
        for event in project_events(session, ["ProjectCreated", "ProjectMemberInvited"])
        if node.org_id in (event.args.get("ownerOrg"), event.args.get("org"))
    }
    found = []
    for project_id in sorted(candidates, reverse=True):
        mine = node.ledger.projects.status_of(project_id, node.org_id)
        if mine is not MemberStatus.NONE:
            found.append(summary(node.ledger.projects.get_project(project_id), mine))
    return found


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(
    project_id: ProjectId, _caller: Member, node: NodeDep, session: SessionDep
) -> ProjectOut:
    """A project's members (and pending invitations), datasets and the tasks tagged with it."""
    return project_out(node, session, project_id)


@router.post("/{project_id}/invitations", response_model=ProjectOut, status_code=201)
def invite(
    project_id: ProjectId, body: InvitationIn, caller: Manager, node: NodeDep, session: SessionDep
) -> ProjectOut:
    """Invite an organisation (the owner organisation only)."""
    visible_project(node, project_id)
    node.ledger_for(caller.user.address).projects.invite(project_id, body.org)
    return project_out(node, session, project_id)


@router.post("/{project_id}/invitation", response_model=ProjectOut)
def decide_invitation(
    project_id: ProjectId,
    body: InvitationDecisionIn,
    caller: Manager,
    node: NodeDep,
    session: SessionDep,
) -> ProjectOut:
    """Accept or decline this organisation's invitation. After declining, the project is no longer
    visible: the answer is then the project as it was shown to the invitee."""
    shown = project_out(node, session, project_id)
    projects = node.ledger_for(caller.user.address).projects
    if body.decision == "accept":
        projects.accept_invitation(project_id)
        return project_out(node, session, project_id)
    projects.decline_invitation(project_id)
    return shown


@router.delete("/{project_id}/members/{org_id}", status_code=204)
def end_membership(
    project_id: ProjectId, org_id: MemberOrgId, caller: Manager, node: NodeDep
) -> Response:
    """End a membership: this organisation leaves when ``org_id`` is its own; otherwise the
    owner organisation withdraws an invitation or removes a member. Either way the leaving
    organisation's datasets leave the project."""
    visible_project(node, project_id)
    projects = node.ledger_for(caller.user.address).projects
    if org_id == node.org_id:
        projects.leave_project(project_id)
    elif projects.status_of(project_id, org_id) is MemberStatus.INVITED:
        projects.withdraw_invitation(project_id, org_id)
    else:
        projects.remove_member(project_id, org_id)
    return Response(status_code=204)


@router.post("/{project_id}/datasets", response_model=ProjectOut, status_code=201)
def add_dataset(
    project_id: ProjectId,
    body: ProjectDatasetIn,
    caller: DataOwner,
    node: NodeDep,
    session: SessionDep,
) -> ProjectOut:
    """Add one of this organisation's datasets to a project it is a member of."""
    visible_project(node, project_id)
    dataset = parse_hex32(body.dataset, "dataset id")
    node.ledger_for(caller.user.address).projects.add_dataset(project_id, dataset)
    return project_out(node, session, project_id)


@router.delete("/{project_id}/datasets/{dataset_id}", response_model=ProjectOut)
def remove_dataset(
    project_id: ProjectId, dataset_id: str, caller: DataOwner, node: NodeDep, session: SessionDep
) -> ProjectOut:
    """Take one of this organisation's datasets out of a project."""
    visible_project(node, project_id)
    dataset = parse_hex32(dataset_id, "dataset id")
    node.ledger_for(caller.user.address).projects.remove_dataset(project_id, dataset)
    return project_out(node, session, project_id)


@router.post("/{project_id}/close", response_model=ProjectOut)
def close_project(
    project_id: ProjectId, caller: Manager, node: NodeDep, session: SessionDep
) -> ProjectOut:
    """Close a project for good (the owner organisation only); it stays readable."""
    visible_project(node, project_id)
    node.ledger_for(caller.user.address).projects.close_project(project_id)
    return project_out(node, session, project_id)
