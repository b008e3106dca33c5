"""A task's record and its result, as the node reports them."""

from __future__ import annotations

from pydantic import Field

from privledger.wire.body import Reply


class TaskEvent(Reply):
    block_number: int
    tx_hash: str
    contract: str
    event: str
    args: dict[str, object]


class TaskResources(Reply):
    """The resources of this node's part in a task (``docs/operations.md`` says what each
    figure means and its limits)."""

    cpu_seconds: float = Field(description="CPU time of the node's process over the task's part")
    peak_rss_bytes: int = Field(description="the process's peak resident memory meanwhile")
    bytes_sent: int = Field(description="payload bytes sent to the task's peers, before framing")
    bytes_received: int = Field(description="payload bytes received from the task's peers")
    shared: bool = Field(
        description="another task ran in the process meanwhile: CPU and memory are upper bounds"
    )


class TaskOut(Reply):
    task_id: int
    status: str
    kind: str
    spec_hash: str
    requester_org: int
    participants: list[int]
    inputs: list[str]
    fee: int
    deadline: int
    failure_reason: int
    local_state: str | None
    local_failure: str | None
    local_protocol_seconds: float | None
    local_bytes_sent: int | None
    local_resources: TaskResources | None = None  # this node's part, once it anchored
    timeline: list[TaskEvent]


class TaskResult(Reply):
    task_id: int
    items: list[str]
    salt: str
    result_digest: str
    transcript_hash: str
