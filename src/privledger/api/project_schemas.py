"""Request bodies of the projects (F14) and workflow (F15) routes; their response bodies are
:mod:`privledger.wire.projects`'s."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from privledger.api.schemas import Body, Hex32

# the response bodies, shared with the SDK
from privledger.wire.projects import MemberStatusName as MemberStatusName
from privledger.wire.projects import ProjectDatasetOut as ProjectDatasetOut
from privledger.wire.projects import ProjectMemberOut as ProjectMemberOut
from privledger.wire.projects import ProjectOut as ProjectOut
from privledger.wire.projects import ProjectSummary as ProjectSummary
from privledger.wire.projects import ProjectTaskOut as ProjectTaskOut
from privledger.wire.projects import WorkflowItem as WorkflowItem
from privledger.wire.projects import WorkflowKind as WorkflowKind
from privledger.wire.projects import WorkflowStatus as WorkflowStatus

MAX_NAME_BYTES = 100  # ProjectRegistry.MAX_NAME_BYTES


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
