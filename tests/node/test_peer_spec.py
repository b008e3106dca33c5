"""A provider's node reads a task's spec from the requester's node (``privledger.node.peer_spec``)
and holds it to the chain; a modified requester node serves what it likes.

An endless or multi-gigabyte answer used to be read whole into memory before its hash was
checked, by the worker and by an owner's ``GET /approvals``: it is now refused once it passes
:data:`MAX_SPEC_BYTES` (and one trickled in, each byte within the read timeout, at
:data:`SPEC_FETCH_S`). And spec bytes that hash to the spec hash on chain used to be accepted in
any JSON form: a requester could put a key twice (``"output"`` first as ``"both"``, then as
``"requester"``), so that privledger, which keeps the last, and a partner platform or an auditor
whose parser keeps the first read two different tasks under one hash. Only the canonical JSON of
the spec (sorted keys, compact, each field once: docs/grants.md) is accepted now.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import httpx
import pytest

from privledger.evm.contracts import FailureReason, Kind
from privledger.evm.hashing import keccak256
from privledger.node import peer_spec
from privledger.node.peer_spec import MAX_SPEC_BYTES, InboxSpecs, checked_spec, fetch_spec
from privledger.node.runners import TaskRefused
from privledger.node.spec import PROTOCOL_IDS, SpecInput, TaskSpec, parse_spec

from .test_spec import ds, keys

pytestmark = pytest.mark.security


def _requester_answering(answer: Callable[[httpx.Request], httpx.Response]) -> SimpleNamespace:
    """A provider's node (org 2) whose requester's node answers each spec fetch by ``answer``."""
    org = SimpleNamespace(endpoint="http://requester.example")
    return SimpleNamespace(
        org_id=2,
        ledger=SimpleNamespace(orgs=SimpleNamespace(get_org=lambda _org: org)),
        http=httpx.Client(transport=httpx.MockTransport(answer)),
    )


def _requester_serving(body: Iterator[bytes]) -> SimpleNamespace:
    """A provider's node whose requester's node answers every spec fetch with ``body``."""
    return _requester_answering(lambda _request: httpx.Response(200, content=body))


def _fetch(body: Iterator[bytes]) -> bytes:
    task = SimpleNamespace(requester_org=7, task_id=1)
    return fetch_spec(_requester_serving(body), task)  # type: ignore[arg-type]


def test_a_busy_or_throttling_requester_is_asked_again_until_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """429 (a requester's node throttling the address it sees, which an outsider may share) and
    503 are asked again after Retry-After: the spec comes once they pass; while they last the
    fetch ends at its deadline as unreachable, never as a mismatch (which used to fail the task
    at the first 429). Another refusal (404) is the requester's answer: a mismatch at once."""
    statuses = [429, 503, 200]
    seen: list[int] = []

    def answer(_request: httpx.Request) -> httpx.Response:
        seen.append(statuses[len(seen)] if len(seen) < len(statuses) else statuses[-1])
        return httpx.Response(seen[-1], headers={"Retry-After": "0"}, content=b"{}")

    task = SimpleNamespace(requester_org=7, task_id=1)
    assert fetch_spec(_requester_answering(answer), task) == b"{}"  # type: ignore[arg-type]
    assert seen == [429, 503, 200]
    monkeypatch.setattr(peer_spec, "SPEC_FETCH_S", 0.5)
    throttled = _requester_answering(lambda _r: httpx.Response(429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    with pytest.raises(TaskRefused) as refused:
        fetch_spec(throttled, task)  # type: ignore[arg-type]
    assert refused.value.reason is FailureReason.PEER_UNREACHABLE
    assert time.monotonic() - started < 1.5
    with pytest.raises(TaskRefused) as refused:
        fetch_spec(_requester_answering(lambda _r: httpx.Response(404)), task)  # type: ignore[arg-type]
    assert refused.value.reason is FailureReason.SPEC_MISMATCH


def test_the_inbox_keeps_what_it_read_and_asks_one_requester_little_at_once() -> None:
    """The approval inbox reads a verified spec once, and while two fetches from one requester's
    node are under way a third request of that requester is shown unreachable at once instead
    of holding another API thread; a refusal is asked again next time."""
    raw = ECDH.canonical_json()
    task = _chain_task(raw, ECDH)
    task.task_id = 5
    fetched: list[str] = []
    release = threading.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.path)
        if "/tasks/5/" not in request.url.path:
            release.wait(5)  # a slow requester's node
            return httpx.Response(404)
        return httpx.Response(200, content=raw)

    node, inbox = _requester_answering(answer), InboxSpecs()
    assert inbox.checked(node, task) == ECDH  # type: ignore[arg-type]
    assert inbox.checked(node, task) == ECDH  # type: ignore[arg-type]
    assert fetched == ["/api/v1/peer/tasks/5/spec"]
    slow = [_chain_task(raw, ECDH) for _ in range(3)]
    for number, other in enumerate(slow):
        other.task_id = 10 + number
    waiting = [threading.Thread(target=_refused, args=(inbox, node, other)) for other in slow[:2]]
    for thread in waiting:
        thread.start()
    deadline = time.monotonic() + 5
    while len(fetched) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(TaskRefused, match="still waiting for org 1"):
        inbox.checked(node, slow[2])  # type: ignore[arg-type]
    release.set()
    for thread in waiting:
        thread.join(5)
    with pytest.raises(TaskRefused) as refused:
        inbox.checked(node, slow[2])  # type: ignore[arg-type]
    assert refused.value.reason is FailureReason.SPEC_MISMATCH and len(fetched) == 4


def _refused(inbox: InboxSpecs, node: SimpleNamespace, task: SimpleNamespace) -> None:
    with pytest.raises(TaskRefused):
        inbox.checked(node, task)  # type: ignore[arg-type]


def test_an_oversized_spec_is_refused_after_a_bounded_read() -> None:
    total, sent = 16 * MAX_SPEC_BYTES, 0  # standing for "as much as the requester likes"

    def flood() -> Iterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += 2**20
            yield b" " * 2**20

    with pytest.raises(TaskRefused) as refused:
        _fetch(flood())
    assert refused.value.reason is FailureReason.SPEC_MISMATCH
    assert sent <= MAX_SPEC_BYTES + 2 * 2**20


def test_a_spec_trickled_in_is_refused_at_the_fetch_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(peer_spec, "SPEC_FETCH_S", 0.3)
    sent = 0

    def trickle() -> Iterator[bytes]:  # each byte well within a read timeout
        nonlocal sent
        while sent < 100:
            time.sleep(0.02)
            sent += 1
            yield b" "

    with pytest.raises(TaskRefused) as refused:
        _fetch(trickle())
    assert refused.value.reason is FailureReason.PEER_UNREACHABLE
    assert sent < 100


def _largest_spec() -> TaskSpec:
    """Vertical FL among three parties with 200 feature columns each, every name 200 characters
    (the most columns and the longest names a spec takes): ~120 KB of canonical JSON."""

    def party(org: int, label: str | None) -> SpecInput:
        features = tuple(f"{i:03d}".ljust(200, "f") for i in range(200))
        return SpecInput(
            dataset=ds(org), org=org, column="k" * 200, features=features, value_column=label
        )

    inputs = (party(1, "y" * 200), party(2, None), party(3, None))
    return parse_spec({"protocol": "vertical-lr", "requester": 1, "inputs": inputs, "dealer": 9})


def test_the_largest_spec_is_well_within_the_bound() -> None:
    canonical = _largest_spec().canonical_json()
    assert 8 * len(canonical) < MAX_SPEC_BYTES
    chunks = (canonical[at : at + 4096] for at in range(0, len(canonical), 4096))
    assert _fetch(chunks) == canonical


def _chain_task(raw: bytes, spec: TaskSpec) -> SimpleNamespace:
    """The task on chain as a requester submits it with ``keccak256(raw)`` as its spec hash."""
    return SimpleNamespace(
        spec_hash=keccak256(raw),
        requester_org=spec.requester,
        participants=spec.participants,
        inputs=tuple(bytes.fromhex(item.dataset[2:]) for item in spec.inputs),
        kind=Kind.PSI,
        protocol=PROTOCOL_IDS[spec.protocol],
    )


ECDH = parse_spec({"protocol": "ecdh", "requester": 1, "inputs": (keys(1), keys(2))})


def test_the_canonical_spec_is_accepted() -> None:
    raw = ECDH.canonical_json()
    assert checked_spec(raw, _chain_task(raw, ECDH)) == ECDH  # type: ignore[arg-type]


def _other_forms() -> dict[str, bytes]:
    canonical = ECDH.canonical_json()
    assert b'"output":"requester"' in canonical
    document = json.loads(canonical)
    return {
        # a first-wins parser reads "both": the provider's output would go to the requester too
        "a key twice": b'{"output":"both",' + canonical[1:],
        "spaced": json.dumps(document, sort_keys=True).encode(),
        "unsorted": json.dumps(dict(reversed(document.items())), separators=(",", ":")).encode(),
        "escaped": canonical.replace(b'"ecdh"', b'"\\u0065cdh"'),
        "padded": canonical + b"\n",
    }


@pytest.mark.parametrize("raw", _other_forms().values(), ids=_other_forms().keys())
def test_a_spec_in_another_json_form_is_refused(raw: bytes) -> None:
    with pytest.raises(TaskRefused) as refused:
        checked_spec(raw, _chain_task(raw, ECDH))  # type: ignore[arg-type]
    assert refused.value.reason is FailureReason.SPEC_MISMATCH
