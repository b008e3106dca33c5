"""A task's spec as its requester's node serves it, held to what the chain says of the task.

The chain keeps only a task's spec hash; the spec itself is served by the requester's node
(``GET /api/v1/peer/tasks/{id}/spec``, a read signed for this organisation by ``node.http``).
The worker fetches it before it runs a task, the approval inbox before an owner decides one; both
accept it only when it hashes to the spec hash on chain and agrees with the task's requester,
participants, inputs, kind and protocol there. A refusal is a :class:`TaskRefused` with the reason
the worker records on chain: ``PEER_UNREACHABLE`` or ``SPEC_MISMATCH``.

The requester's node may be modified, so nothing it serves is trusted for its size, its pace or
its form: an answer longer than :data:`MAX_SPEC_BYTES` is refused as soon as it passes that
bound; the whole fetch, retries included, ends by a deadline on the clock (:data:`SPEC_FETCH_S`
for the worker, shorter for the approval inbox), each read waiting at most :data:`SPEC_READ_S`
and never past the deadline, so a spec trickled in holds a thread for that long at most; a
requester's node that answers 429 or 503 (busy, or throttling the address it sees this node
call from, which an outsider may share) is asked again after its ``Retry-After`` until the
deadline, and only then is it unreachable -- never a spec mismatch. Only the spec's
canonical JSON is accepted (one document hashes to the spec hash, and every parser, including a
partner platform's or an auditor's, reads the same task from it: a key given twice would let a
parser that keeps its first value read another task than one that keeps the last).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict

import httpx

from privledger.evm.contracts import FailureReason, Task
from privledger.evm.hashing import keccak256
from privledger.node.components import KINDS, protocol_id
from privledger.node.context import NodeContext
from privledger.node.endpoints import usable_endpoint
from privledger.node.runners import TaskRefused
from privledger.node.spec import TaskSpec, parse_canonical

# The largest spec a protocol takes, vertical FL among three parties with 200 feature columns each
# named in 200 characters, is ~120 KB of canonical JSON (tests/node/test_peer_spec.py); a spec is
# submitted in a JSON body of at most 1 MiB by default (``max_json_body_bytes``). The requester's
# node refuses a larger spec at submission (``api.routes.tasks.plan_submission``), before the chain.
MAX_SPEC_BYTES = 4 * 2**20
# The whole fetch, retries included: a spec is a few KB the requester's node reads from its
# database, so a healthy node answers in milliseconds; a modified one that trickles its answer
# holds the thread that reads it (a worker's task thread, an API request thread) this long.
SPEC_FETCH_S = 20.0
SPEC_READ_S = 5.0  # each read: a byte every 29 s under the client's 30 s would never end a fetch
RETRY_STATUSES = frozenset({429, 503})
MAX_RETRY_WAIT_S = 2.0
# The approval inbox reads specs in API request threads, for an owner waiting at a screen
INBOX_FETCH_S = 5.0
INBOX_FETCHES_PER_REQUESTER = 2  # at once: a requester's node holds no more request threads


def fetch_spec(node: NodeContext, task: Task, *, deadline_s: float | None = None) -> bytes:
    """The spec of ``task`` as its requester's node serves it, unchecked but for its size, within
    ``deadline_s`` seconds (:data:`SPEC_FETCH_S` unless given; :class:`TaskRefused`
    ``PEER_UNREACHABLE`` after)."""
    deadline_s = SPEC_FETCH_S if deadline_s is None else deadline_s
    endpoint = usable_endpoint(node.ledger.orgs.get_org(task.requester_org).endpoint)
    url = f"{endpoint}/api/v1/peer/tasks/{task.task_id}/spec"
    deadline = time.monotonic() + deadline_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TaskRefused(FailureReason.PEER_UNREACHABLE, f"no spec within {deadline_s} s")
        try:
            timeout = httpx.Timeout(min(SPEC_READ_S, left))
            with node.http.stream("GET", url, timeout=timeout) as response:
                if response.status_code in RETRY_STATUSES:
                    wait_s = _retry_after(response, deadline)
                else:
                    return _spec_body(response, deadline, deadline_s)
        except TaskRefused:
            raise
        except Exception as exc:
            raise TaskRefused(
                FailureReason.PEER_UNREACHABLE, f"cannot fetch the spec: {exc}"
            ) from exc
        time.sleep(wait_s)


def _retry_after(response: httpx.Response, deadline: float) -> float:
    """How long to wait before asking again: the answer's ``Retry-After`` (seconds), at most
    :data:`MAX_RETRY_WAIT_S` and never past the deadline."""
    try:
        asked = float(response.headers.get("retry-after", "1"))
    except ValueError:
        asked = 1.0
    return max(0.0, min(asked, MAX_RETRY_WAIT_S, deadline - time.monotonic()))


def _spec_body(response: httpx.Response, deadline: float, deadline_s: float) -> bytes:
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
            raise TaskRefused(FailureReason.PEER_UNREACHABLE, f"the spec took over {deadline_s} s")
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


class InboxSpecs:
    """The specs of approval requests as the inbox shows them, so that neither reloading the
    inbox nor many requests from one requester hold the node's API: a verified spec is kept (the
    newest ``size``), each fetch ends within :data:`INBOX_FETCH_S`, and at most
    :data:`INBOX_FETCHES_PER_REQUESTER` run at once for one requesting organisation (a request
    beyond them is shown unreachable at once, and asked again next time)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        # by (reading organisation, task, spec hash): a tenant host's organisations read apart
        self._kept: OrderedDict[tuple[int, int, bytes], TaskSpec] = OrderedDict()
        self._fetching: Counter[int] = Counter()
        self._lock = threading.Lock()

    def checked(self, node: NodeContext, task: Task) -> TaskSpec:
        """The verified spec of ``task``, or the :class:`TaskRefused` of the fetch or check."""
        key = (node.org_id, task.task_id, task.spec_hash)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                return kept
            if self._fetching[task.requester_org] >= INBOX_FETCHES_PER_REQUESTER:
                raise TaskRefused(
                    FailureReason.PEER_UNREACHABLE,
                    f"this node is still waiting for org {task.requester_org}'s other specs",
                )
            self._fetching[task.requester_org] += 1
        try:
            spec = checked_spec(fetch_spec(node, task, deadline_s=INBOX_FETCH_S), task)
        finally:
            with self._lock:
                self._fetching[task.requester_org] -= 1
        with self._lock:
            self._kept[key] = spec
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return spec
