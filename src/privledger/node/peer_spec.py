"""A task's spec as its requester's node serves it, held to what the chain says of the task.

The chain keeps only a task's spec hash; the spec itself is served by the requester's node
(``GET /api/v1/peer/tasks/{id}/spec``, a read signed for this organisation by ``node.http``).
The worker fetches it before it runs a task, the approval inbox before an owner decides one; both
accept it only when it hashes to the spec hash on chain and agrees with the task's requester,
participants, inputs, kind and protocol there. A refusal is a :class:`TaskRefused` with the reason
the worker records on chain: ``PEER_UNREACHABLE`` or ``SPEC_MISMATCH``.

The requester's node may be modified, so nothing it serves is trusted for its size or its form:
an answer longer than :data:`MAX_SPEC_BYTES` is refused as soon as it passes that bound (one still
arriving after :data:`SPEC_FETCH_S` seconds is refused as unreachable), and only the spec's
canonical JSON is accepted (one document hashes to the spec hash, and every parser, including a
partner platform's or an auditor's, reads the same task from it: a key given twice would let a
parser that keeps its first value read another task than one that keeps the last).
"""

from __future__ import annotations

import time

from privledger.evm.contracts import FailureReason, Task
from privledger.evm.hashing import keccak256
from privledger.node.components import KINDS, protocol_id
from privledger.node.context import NodeContext
from privledger.node.runners import TaskRefused
from privledger.node.spec import TaskSpec, parse_canonical

# The largest spec a protocol takes, vertical FL among three parties with 200 feature columns each
# named in 200 characters, is ~120 KB of canonical JSON (tests/node/test_peer_spec.py); a spec is
# submitted in a JSON body of at most 1 MiB by default (``max_json_body_bytes``). The requester's
# node refuses a larger spec at submission (``api.routes.tasks.plan_submission``), before the chain.
MAX_SPEC_BYTES = 4 * 2**20
# Each read waits up to the node client's timeout (30 s); a spec trickled in under it, a few bytes
# at a time, would hold a worker thread for days without a bound on the whole fetch.
SPEC_FETCH_S = 60.0


def fetch_spec(node: NodeContext, task: Task) -> bytes:
    """The spec of ``task`` as its requester's node serves it, unchecked but for its size."""
    endpoint = node.ledger.orgs.get_org(task.requester_org).endpoint
    url = f"{endpoint}/api/v1/peer/tasks/{task.task_id}/spec"
    deadline = time.monotonic() + SPEC_FETCH_S
    try:
        with node.http.stream("GET", url) as response:
            if response.status_code != 200:
                raise TaskRefused(
                    FailureReason.SPEC_MISMATCH, f"spec fetch answered {response.status_code}"
                )
            raw = bytearray()
            for chunk in response.iter_bytes():  # decoded: a compressed answer is bounded too
                raw += chunk
                if len(raw) > MAX_SPEC_BYTES:
                    raise TaskRefused(
                        FailureReason.SPEC_MISMATCH, f"the spec exceeds {MAX_SPEC_BYTES} bytes"
                    )
                if time.monotonic() > deadline:
                    raise TaskRefused(
                        FailureReason.PEER_UNREACHABLE, f"the spec took over {SPEC_FETCH_S} s"
                    )
    except TaskRefused:
        raise
    except Exception as exc:
        raise TaskRefused(FailureReason.PEER_UNREACHABLE, f"cannot fetch the spec: {exc}") from exc
    return bytes(raw)


def checked_spec(raw: bytes, task: Task) -> TaskSpec:
    """``raw`` as the spec of ``task``: the canonical JSON of a spec, hashing to the spec hash on
    chain and agreeing with the task there."""
    if keccak256(raw) != task.spec_hash:
        raise TaskRefused(FailureReason.SPEC_MISMATCH, "the spec does not match its hash on chain")
    try:
        spec = parse_canonical(raw)
    except ValueError as exc:
        raise TaskRefused(FailureReason.SPEC_MISMATCH, f"unreadable spec: {exc}") from exc
    if raw != spec.canonical_json():
        raise TaskRefused(FailureReason.SPEC_MISMATCH, "the spec is not in its canonical form")
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
