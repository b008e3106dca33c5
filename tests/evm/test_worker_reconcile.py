"""The worker's reconciliation of one task after a reorganisation (``Worker._reconcile``), each
case set up on the real chain as a reorganisation leaves it: the node's record says one thing,
the chain (which took back some blocks) another. The whole path under running nodes is
``tests/e2e/test_reorg.py``; here each branch on its own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.evm.errors import ChainRevert
from privledger.node.context import NodeContext
from privledger.node.worker import LOST, Worker
from privledger.store.models import LocalTask

from .conftest import Consortium


@pytest.fixture
def worker(telecom_api: tuple[TestClient, NodeContext]) -> Iterator[Worker]:
    _client, node = telecom_api
    worker = Worker(node, max_parallel=1)  # not started: each test calls what it checks
    yield worker
    worker.stop()


def _store(node: NodeContext, row: LocalTask) -> None:
    with Session(node.engine) as session:
        session.add(row)
        session.commit()


def _row(node: NodeContext, task_id: int) -> LocalTask:
    with Session(node.engine) as session:
        row = session.get(LocalTask, task_id)
    assert row is not None
    return row


def test_a_failure_the_chain_lost_is_recorded_again(consortium: Consortium, worker: Worker) -> None:
    task_id, spec_hash, _inputs = consortium.psi_task()
    failure = "PEER_UNREACHABLE: bank-a's node did not answer"
    _store(
        worker.node,
        LocalTask(
            task_id=task_id, spec_hash="0x" + spec_hash.hex(), state="failed", failure=failure
        ),
    )
    assert worker.node.ledger.tasks.get_task(task_id).status is TaskStatus.AUTHORISED
    worker._reconcile(task_id)
    task = worker.node.ledger.tasks.get_task(task_id)
    assert task.status is TaskStatus.FAILED
    assert task.failure_reason == FailureReason.PEER_UNREACHABLE


def test_an_anchor_the_chain_lost_is_sent_again_with_the_same_digest(
    consortium: Consortium, worker: Worker
) -> None:
    task_id, spec_hash, _inputs = consortium.psi_task()
    tasks = worker.node.ledger.tasks
    tasks.start_task(task_id)
    digest, transcript = secrets.token_bytes(32), secrets.token_bytes(32)
    _store(
        worker.node,
        LocalTask(
            task_id=task_id,
            spec_hash="0x" + spec_hash.hex(),
            state="running",  # the anchor and its record both vanished
            result_digest="0x" + digest.hex(),
            transcript_hash="0x" + transcript.hex(),
            result_size=7,
        ),
    )
    assert tasks.anchor_of(task_id, worker.node.org_id) == bytes(32)
    worker._reconcile(task_id)
    assert tasks.anchor_of(task_id, worker.node.org_id) != bytes(32)
    assert _row(worker.node, task_id).state == "anchored"
    worker._reconcile(task_id)  # once more: nothing sent twice
    assert len(tasks._logs("ResultAnchored", task_id)) == 1


def test_a_settlement_the_chain_lost_is_due_again(consortium: Consortium, worker: Worker) -> None:
    task_id, spec_hash, _inputs = consortium.psi_task()
    telecom, bank_a = consortium.telecom.ledger.tasks, consortium.bank_a.ledger.tasks
    telecom.start_task(task_id)
    digest = secrets.token_bytes(32)
    telecom.anchor_result(task_id, digest, bytes(32))
    bank_a.anchor_result(task_id, secrets.token_bytes(32), bytes(32), 1)
    assert telecom.get_task(task_id).status is TaskStatus.COMPLETED
    _store(
        worker.node,
        LocalTask(
            task_id=task_id,
            spec_hash="0x" + spec_hash.hex(),
            state="settled",  # its settlement vanished with the blocks taken back
            result_digest="0x" + digest.hex(),
            transcript_hash="0x" + bytes(32).hex(),
        ),
    )
    worker._reconcile(task_id)
    assert _row(worker.node, task_id).state == "anchored"
    assert task_id in worker._to_settle


def test_a_submission_the_chain_lost_is_recorded_as_lost(
    consortium: Consortium, worker: Worker
) -> None:
    tasks = worker.node.ledger.tasks
    gone = tasks.task_count() + 1
    _store(
        worker.node,
        LocalTask(task_id=gone, spec_hash="0x" + secrets.token_hex(32), state="submitted"),
    )
    worker._reconcile(gone)
    row = _row(worker.node, gone)
    assert row.state == "failed" and (row.failure or "").startswith(LOST)
    assert tasks.task_count() == gone - 1  # nothing sent


def test_a_task_id_taken_by_another_task_is_lost_and_the_new_task_untouched(
    consortium: Consortium, worker: Worker
) -> None:
    task_id, _spec_hash, _inputs = consortium.psi_task()
    earlier = "0x" + secrets.token_hex(32)  # the task this node knew under the id
    _store(
        worker.node,
        LocalTask(
            task_id=task_id,
            spec_hash=earlier,
            state="anchored",
            result_digest="0x" + secrets.token_hex(32),
            transcript_hash="0x" + secrets.token_hex(32),
        ),
    )
    worker._reconcile(task_id)
    row = _row(worker.node, task_id)
    assert row.spec_hash == earlier
    assert row.state == "failed" and (row.failure or "").startswith(LOST)
    tasks = worker.node.ledger.tasks
    assert tasks.get_task(task_id).status is TaskStatus.AUTHORISED
    assert tasks.anchor_of(task_id, worker.node.org_id) == bytes(32)
    assert task_id not in worker._to_settle


def test_a_task_of_no_record_here_is_left_to_its_events(
    consortium: Consortium, worker: Worker
) -> None:
    task_id, _spec_hash, _inputs = consortium.psi_task()
    worker._reconcile(task_id)
    with Session(worker.node.engine) as session:
        assert session.get(LocalTask, task_id) is None
    assert worker.node.ledger.tasks.get_task(task_id).status is TaskStatus.AUTHORISED


@pytest.mark.parametrize("delivered", [False, True])
def test_a_provider_restarted_mid_protocol_anchors_if_it_had_delivered(
    consortium: Consortium, worker: Worker, delivered: bool
) -> None:
    """A provider's node that stopped mid-protocol fails the task on restart -- unless it had
    recorded the delivery of the requester's output: the requester may hold it, so the
    provider anchors as told nothing and the requester cannot take its fee back."""
    task_id, _, _ = consortium.psi_task(consortium.bank_a, consortium.telecom, "kkrt")
    tasks = worker.node.ledger.tasks
    tasks.start_task(task_id)
    if delivered:
        tasks.record_delivery(task_id)
    spec_hash = "0x" + tasks.get_task(task_id).spec_hash.hex()
    _store(worker.node, LocalTask(task_id=task_id, spec_hash=spec_hash, state="running"))
    worker._recover()
    task = tasks.get_task(task_id)
    if not delivered:
        assert task.status is TaskStatus.FAILED
        return
    assert task.status is TaskStatus.RUNNING and _row(worker.node, task_id).state == "anchored"
    assert tasks.anchor_of(task_id, worker.node.org_id) != bytes(32)
    assert tasks.units_of(task_id, worker.node.org_id) == 0
    with pytest.raises(ChainRevert) as refused:
        consortium.bank_a.ledger.tasks.fail_task(task_id, FailureReason.PROTOCOL_ERROR)
    assert refused.value.error == "TaskLedgerDelivered"
