"""A task's spec as its requester's node serves it, held to what the chain says of the task.

The chain keeps only a task's spec hash; the spec itself is served by the requester's node
(``GET /api/v1/peer/tasks/{id}/spec``, a read signed for this organisation by ``node.http``).
The worker fetches it before it runs a task, the approval inbox before an owner decides one; both
accept it only when it hashes to the spec hash on chain and agrees with the task's requester,
participants, inputs, kind and protocol there. A refusal is a :class:`TaskRefused` with the reason
the worker records on chain: ``PEER_UNREACHABLE`` or ``SPEC_MISMATCH``.
"""

from __future__ import annotations

from privledger.evm.contracts import FailureReason, Task
from privledger.evm.hashing import keccak256
from privledger.node.components import KINDS, protocol_id
from privledger.node.context import NodeContext
from privledger.node.runners import TaskRefused
from privledger.node.spec import TaskSpec, parse_canonical


def fetch_spec(node: NodeContext, task: Task) -> bytes:
    """The spec of ``task`` as its requester's node serves it, unchecked."""
    endpoint = node.ledger.orgs.get_org(task.requester_org).endpoint
    url = f"{endpoint}/api/v1/peer/tasks/{task.task_id}/spec"
    try:
        response = node.http.get(url)
    except Exception as exc:
        raise TaskRefused(FailureReason.PEER_UNREACHABLE, f"cannot fetch the spec: {exc}") from exc
    if response.status_code != 200:
        raise TaskRefused(
            FailureReason.SPEC_MISMATCH, f"spec fetch answered {response.status_code}"
        )
    return response.content


def checked_spec(raw: bytes, task: Task) -> TaskSpec:
    """``raw`` as the spec of ``task``: it hashes to the spec hash on chain and agrees with it."""
    if keccak256(raw) != task.spec_hash:
        raise TaskRefused(FailureReason.SPEC_MISMATCH, "the spec does not match its hash on chain")
    try:
        spec = parse_canonical(raw)
    except ValueError as exc:
        raise TaskRefused(FailureReason.SPEC_MISMATCH, f"unreadable spec: {exc}") from exc
    inputs = tuple(bytes.fromhex(item.dataset[2:]) for item in spec.inputs)
    consistent = (
        spec.requester == task.requester_org
        and sorted(spec.participants) == sorted(task.participants)
        and inputs == task.inputs
        and task.kind == KINDS[spec.kind]
        and task.protocol == protocol_id(spec.protocol)
    )
    if not consistent:
        raise TaskRefused(FailureReason.SPEC_MISMATCH, "the spec disagrees with the task on chain")
    return spec
