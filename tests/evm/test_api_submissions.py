"""Task submissions hammered through the real node API (in process) against the real anvil: every
task lands once, with its own id and its local row, the node account's nonces stay gapless, and a
submission the ledger refuses comes back as a 4xx naming the custom error. The concurrent
submissions run on a SQLite and on a PostgreSQL store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient
from sqlalchemy import make_url
from sqlmodel import Session, select
from web3 import Web3
from web3.types import RPCEndpoint

from privledger.api.routes import tasks as tasks_routes
from privledger.api.routes.tasks import send_submission
from privledger.api.threads import REQUEST_THREADS
from privledger.evm.contracts import TaskStatus
from privledger.node.context import NodeContext
from privledger.store.db import (
    BACKGROUND_CONNECTIONS,
    POOL_OVERFLOW,
    POOL_SIZE,
    REQUEST_CONNECTIONS,
)
from privledger.store.models import LocalDataset, LocalTask

from .conftest import Consortium

SUBMISSIONS = 40
THREADS = 8
CROWD = 64  # callers at once: more than the node's request threads and its database pool
BLOCK_S = 1.0


def test_concurrent_submissions_through_the_api(
    consortium: Consortium, store_url: str, telecom_api: tuple[TestClient, NodeContext]
) -> None:
    client, node = telecom_api
    assert node.engine.url.get_backend_name() == make_url(store_url).get_backend_name()
    w3 = consortium.w3
    mine = "0x" + consortium.dataset(consortium.telecom).hex()
    theirs = "0x" + consortium.dataset(consortium.bank_a).hex()
    body = {
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}]
    }
    sender = node.account.address
    first_nonce = w3.eth.get_transaction_count(sender, "pending")
    first_block = w3.eth.block_number + 1

    def submit(_: int) -> dict[str, object]:
        response = client.post("/api/v1/tasks", json=body)
        assert response.status_code == 201, response.text
        out: dict[str, object] = response.json()
        return out

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        tasks = list(pool.map(submit, range(SUBMISSIONS)))
    elapsed = time.monotonic() - started

    ids = [int(str(task["taskId"])) for task in tasks]
    assert len(set(ids)) == SUBMISSIONS
    for task in tasks:
        assert task["status"] == "submitted"  # waits for bank-a's approval
        assert task["localState"] == "submitted"
        events = [event["event"] for event in task["timeline"]]  # type: ignore[attr-defined]
        assert events[:2] == ["TaskSubmitted", "ApprovalRequested"]
        on_chain = node.ledger.tasks.get_task(int(str(task["taskId"])))
        assert on_chain.status is TaskStatus.SUBMITTED
        assert "0x" + on_chain.spec_hash.hex() == task["specHash"]
    with Session(node.engine) as session:
        rows = session.exec(select(LocalTask).where(LocalTask.task_id.in_(ids))).all()  # type: ignore[attr-defined]
    assert sorted(row.task_id for row in rows) == sorted(ids)

    nonces = []
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == sender:  # type: ignore[index]
                nonces.append(tx["nonce"])  # type: ignore[index]
    assert sorted(nonces) == list(range(first_nonce, first_nonce + SUBMISSIONS))
    assert elapsed < 15, f"{SUBMISSIONS} submissions took {elapsed:.1f}s"


@contextmanager
def block_period(w3: Web3, seconds: float) -> Iterator[None]:
    """The chain mines a block every ``seconds`` (as Besu does) instead of one per transaction."""
    done = threading.Event()

    def mine() -> None:
        while not done.wait(seconds):
            w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [False])
    miner = threading.Thread(target=mine, daemon=True)
    miner.start()
    try:
        yield
    finally:
        done.set()
        miner.join()
        w3.provider.make_request(RPCEndpoint("evm_setAutomine"), [True])


def test_a_crowd_of_callers_is_served_not_deadlocked(
    consortium: Consortium,
    store_url: str,
    telecom_api: tuple[TestClient, NodeContext],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a chain with a block period. A request holds a database connection (its session) and
    may open another (the index, the grants): with every connection held by a request waiting
    for a second one, the pool starved until its timeout, a 500 after 30 s. The node runs no
    more requests' code at once than its pool can serve twice over, so a crowd only queues; and
    a submission waits for its block in a thread of another kind, holding no connection, so
    more submissions than request threads wait for the same block."""
    client, _node = telecom_api
    mine = "0x" + consortium.dataset(consortium.telecom).hex()
    theirs = "0x" + consortium.dataset(consortium.bank_a).hex()
    body = {
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}]
    }
    waiting, most = [0], [0]
    lock = threading.Lock()

    def counted(submission: tasks_routes.Submission) -> tuple[int, Mapping[str, Any]]:
        with lock:
            waiting[0] += 1
            most[0] = max(most[0], waiting[0])
        try:
            return send_submission(submission)
        finally:
            with lock:
                waiting[0] -= 1

    monkeypatch.setattr(tasks_routes, "send_submission", counted)
    started = time.monotonic()
    with block_period(consortium.w3, BLOCK_S), ThreadPoolExecutor(CROWD) as pool:
        answers = list(pool.map(lambda _: client.post("/api/v1/tasks", json=body), range(CROWD)))
    elapsed = time.monotonic() - started
    assert [answer.status_code for answer in answers] == [201] * CROWD, answers[0].text
    assert len({answer.json()["taskId"] for answer in answers}) == CROWD
    assert elapsed < 20, f"{CROWD} callers at once took {elapsed:.1f}s"
    assert most[0] > REQUEST_THREADS, f"at most {most[0]} submissions waited for a block"
    assert client.portal is not None
    limiter = client.portal.call(to_thread.current_default_thread_limiter)
    assert limiter.total_tokens == REQUEST_THREADS
    assert (
        REQUEST_THREADS * REQUEST_CONNECTIONS + BACKGROUND_CONNECTIONS <= POOL_SIZE + POOL_OVERFLOW
    )


def test_a_refused_submission_is_a_4xx_naming_the_error(
    consortium: Consortium, telecom_api: tuple[TestClient, NodeContext]
) -> None:
    client, node = telecom_api
    w3 = consortium.w3
    mine = "0x" + consortium.dataset(consortium.telecom).hex()
    theirs = consortium.dataset(consortium.bank_a)
    body = {
        "inputs": [
            {"dataset": mine, "column": "c"},
            {"dataset": "0x" + theirs.hex(), "column": "c"},
        ]
    }
    assert client.post("/api/v1/tasks", json=body).status_code == 201  # the owner is now cached
    consortium.bank_a.ledger.data.retire(theirs)
    start = w3.eth.get_transaction_count(node.account.address, "pending")

    refused = client.post("/api/v1/tasks", json=body)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "TaskLedgerInputRetired"
    unknown = {"inputs": [body["inputs"][0], {"dataset": "0x" + "ab" * 32, "column": "c"}]}
    missing = client.post("/api/v1/tasks", json=unknown)
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "DataRegistryUnknownDataset"
    assert w3.eth.get_transaction_count(node.account.address, "pending") == start  # none sent


def test_the_columns_of_a_held_dataset_are_checked_at_every_submission(
    consortium: Consortium, telecom_api: tuple[TestClient, NodeContext]
) -> None:
    """The node's own input must name columns its dataset has (400 otherwise), also once the
    dataset's columns were read for an earlier submission; a dataset not held at one submission
    is looked for again at the next."""
    client, node = telecom_api
    theirs = "0x" + consortium.dataset(consortium.bank_a).hex()
    held, later = ("0x" + consortium.dataset(consortium.telecom).hex() for _ in range(2))

    def submit(mine: str, column: str) -> Any:
        body = {"inputs": [{"dataset": mine, "column": column}, {"dataset": theirs, "column": "c"}]}
        return client.post("/api/v1/tasks", json=body)

    def hold(dataset: str) -> None:
        with Session(node.engine) as session:
            session.add(
                LocalDataset(
                    dataset_id=dataset,
                    name=dataset[:10],
                    path="/nonexistent",
                    columns=["phone"],
                    row_count=100,
                    schema_hash="0x" + "00" * 32,
                    commitment="0x" + "00" * 32,
                    salt="0x" + "00" * 32,
                    level=2,
                    unit_price=0,
                )
            )
            session.commit()

    hold(held)
    assert submit(held, "phone").status_code == 201
    for _ in range(2):  # the second time from what the first read
        refused = submit(held, "email")
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "invalid_task"
        assert "no column 'email'" in refused.json()["error"]["message"]
    assert submit(later, "email").status_code == 201  # not held here: the worker finds out
    hold(later)
    assert submit(later, "email").status_code == 400


def test_a_submission_answers_as_its_own_events_left_the_task(
    consortium: Consortium, telecom_api: tuple[TestClient, NodeContext]
) -> None:
    """The answer is read from the submission's receipt, not the chain or the index: it must say
    what the indexed timeline says about that transaction, a grant used and the task authorised."""
    client, _node = telecom_api
    mine = "0x" + consortium.dataset(consortium.telecom).hex()
    theirs = consortium.dataset(consortium.bank_a)
    body = {
        "inputs": [
            {"dataset": mine, "column": "phone"},
            {"dataset": "0x" + theirs.hex(), "column": "phone"},
        ],
        "feeWei": 12_345,
    }
    waiting = client.post("/api/v1/tasks", json=body).json()  # no grant yet: approval asked
    assert waiting["status"] == "submitted"
    # issued after the node last indexed: the next submission must find and use it
    grant_id = consortium.grant(theirs, consortium.bank_a, consortium.telecom)
    answer = client.post("/api/v1/tasks", json=body)
    assert answer.status_code == 201, answer.text
    task = answer.json()
    assert (task["status"], task["localState"], task["fee"]) == ("authorised", "submitted", 12_345)
    assert task["inputs"] == [mine, "0x" + theirs.hex()]
    assert [e["event"] for e in task["timeline"]][:1] == ["TaskSubmitted"]
    assert "TaskAuthorised" in [e["event"] for e in task["timeline"]]
    later = client.get(f"/api/v1/tasks/{task['taskId']}").json()
    for field in (
        "status",
        "kind",
        "specHash",
        "requesterOrg",
        "participants",
        "inputs",
        "deadline",
    ):
        assert task[field] == later[field], field
    assert task["timeline"] == later["timeline"]  # the same rows the indexer stored
    used = consortium.bank_a.ledger.grants.get_grant(grant_id).used
    assert used == 1
