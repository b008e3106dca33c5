"""A task tagged with a project keeps to it (F14): the project is active, every participant is a
member and every input is one of its datasets.

The requester's node checks it before it submits (400); every other participant checks it
again, from the chain, before it reads any data -- a requester that submits past its node
cannot tag a task with a project it is not in, or bring a dataset the project does not hold,
and have it listed and audited as the project's.
"""

from __future__ import annotations

from privledger.evm.contracts import MemberStatus, ProjectRegistry, ProjectStatus
from privledger.evm.errors import ChainRevert
from privledger.node.spec import TaskSpec


def project_violation(projects: ProjectRegistry, spec: TaskSpec) -> str | None:
    """Why the task ``spec`` breaks the project it is tagged with; None when it keeps it or
    names none."""
    project_id = spec.project
    if project_id is None:
        return None
    try:
        project = projects.get_project(project_id)
    except ChainRevert:
        return f"there is no project {project_id}"
    if project.status is not ProjectStatus.ACTIVE:
        return f"project {project_id} is closed"
    for org in spec.participants:
        if projects.status_of(project_id, org) is not MemberStatus.MEMBER:
            return f"organisation {org} is not a member of project {project_id}"
    for item in spec.inputs:
        if not projects.has_dataset(project_id, bytes.fromhex(item.dataset[2:])):
            return f"dataset {item.dataset} is not in project {project_id}"
    return None
