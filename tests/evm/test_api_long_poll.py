"""``GET /tasks/{id}?waitS=&unlessStatus=`` against the real anvil: the answer comes as soon as the
task's status changes (woken by the indexer or by the worker's commit of its local row), or when
the time is up with the status as it stands; the SDK's ``wait`` follows a task with it."""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from privledger.api.app import create_app
from privledger.api.deps import issue_token
from privledger.api.routes.tasks import MAX_WAIT_S, StatusName
from privledger.evm.anvil import free_port
from privledger.evm.contracts import TaskStatus
from privledger.node.context import NodeContext
from privledger.sdk import NodeClient
from privledger.store.models import AuditEntry, LocalTask

from .conftest import Consortium

API = tuple[TestClient, NodeContext]


def _submit(consortium: Consortium, client: TestClient) -> tuple[int, bytes]:
    """A task waiting for bank-a's approval of its input; its id and that input."""
    theirs = consortium.dataset(consortium.bank_a)
    body = {
        "inputs": [
            {"dataset": "0x" + consortium.dataset(consortium.telecom).hex(), "column": "c"},
            {"dataset": "0x" + theirs.hex(), "column": "c"},
        ]
    }
    answer = client.post("/api/v1/tasks", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "submitted"
    return int(answer.json()["taskId"]), theirs


def _get_later(client: TestClient, path: str) -> Future[tuple[float, dict[str, Any]]]:
    """GET ``path`` from another thread: the answer and the seconds it took."""

    def get() -> tuple[float, dict[str, Any]]:
        started = time.monotonic()
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        return time.monotonic() - started, answer.json()

    return ThreadPoolExecutor(1).submit(get)


def test_a_waiting_call_answers_once_the_indexer_sees_the_change(
    consortium: Consortium, telecom_api: API
) -> None:
    client, node = telecom_api
    task_id, theirs = _submit(consortium, client)
    waiting = _get_later(client, f"/api/v1/tasks/{task_id}?waitS=20&unlessStatus=submitted")
    time.sleep(0.5)
    assert not waiting.done()
    consortium.bank_a.ledger.grants.approve(task_id, theirs)
    time.sleep(0.3)
    assert not waiting.done()  # nobody indexed the approval yet
    node.indexer.sync()  # what the worker's next tick does
    elapsed, task = waiting.result(timeout=5)
    assert task["status"] == "authorised"
    assert "TaskAuthorised" in [event["event"] for event in task["timeline"]]
    assert elapsed < 5


def test_a_commit_of_the_local_row_wakes_a_waiting_call(
    consortium: Consortium, telecom_api: API
) -> None:
    client, node = telecom_api
    task_id, theirs = _submit(consortium, client)
    waiting = _get_later(client, f"/api/v1/tasks/{task_id}?waitS=20&unlessStatus=submitted")
    time.sleep(0.3)
    consortium.bank_a.ledger.grants.approve(task_id, theirs)
    with Session(node.engine) as session:  # as the worker records its progress
        row = session.get(LocalTask, task_id)
        assert row is not None
        row.state = "running"
        session.add(row)
        session.commit()
    elapsed, task = waiting.result(timeout=5)
    assert (task["status"], task["localState"]) == ("authorised", "running")
    assert elapsed < 5


def test_a_waiting_call_answers_when_the_time_is_up(
    consortium: Consortium, telecom_api: API
) -> None:
    client, node = telecom_api
    task_id, _ = _submit(consortium, client)
    waiting = _get_later(client, f"/api/v1/tasks/{task_id}?waitS=1.5&unlessStatus=submitted")
    time.sleep(0.3)
    with Session(node.engine) as session:  # a change that leaves the status as it was
        row = session.get(LocalTask, task_id)
        assert row is not None
        row.failure = "noted"
        session.add(row)
        session.commit()
    elapsed, task = waiting.result(timeout=10)
    assert task["status"] == "submitted" and task["localFailure"] == "noted"
    assert 1.4 <= elapsed < 5
    # the status already differs, or no wait asked for: at once
    for query in ("waitS=20&unlessStatus=authorised", "unlessStatus=submitted", ""):
        started = time.monotonic()
        assert client.get(f"/api/v1/tasks/{task_id}?{query}").json()["status"] == "submitted"
        assert time.monotonic() - started < 1
    # without unlessStatus: until the task is settled or failed
    elapsed, task = _get_later(client, f"/api/v1/tasks/{task_id}?waitS=1").result(timeout=10)
    assert task["status"] == "submitted" and elapsed >= 0.9


@pytest.mark.parametrize(
    "query",
    ["waitS=-1", f"waitS={MAX_WAIT_S + 1}", "waitS=soon", "waitS=5&unlessStatus=done"],
)
def test_bad_long_poll_values_are_a_422(telecom_api: API, query: str) -> None:
    client, _ = telecom_api
    answer = client.get(f"/api/v1/tasks/1?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert set(answer.json()["error"]) == {"code", "message"}


def test_an_unknown_task_is_a_404_at_once(telecom_api: API) -> None:
    client, _ = telecom_api
    started = time.monotonic()
    answer = client.get(f"/api/v1/tasks/{10**9}?waitS=10")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "TaskLedgerUnknownTask"
    assert time.monotonic() - started < 5


def test_the_status_names_are_the_ledgers() -> None:
    assert list(typing.get_args(StatusName)) == [
        status.name.lower() for status in TaskStatus if status is not TaskStatus.NONE
    ]


@pytest.fixture
def telecom_url(telecom_api: API) -> Iterator[str]:
    """The same node served over real HTTP (the SDK's own client)."""
    _, node = telecom_api
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(node), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_sdk_wait_follows_a_task_with_one_request_per_change(
    consortium: Consortium, telecom_api: API, telecom_url: str
) -> None:
    client, node = telecom_api
    task_id, theirs = _submit(consortium, client)
    with Session(node.engine) as session:
        user = f"watcher-{task_id}"
        token = issue_token(session, user_name=user, address=node.account.address, role="operator")
    seen: list[str] = []
    with NodeClient(telecom_url, token) as sdk:
        done = ThreadPoolExecutor(1).submit(
            sdk.wait, task_id, timeout_s=30, progress=lambda task: seen.append(task.status)
        )
        time.sleep(1.0)  # a poller would have asked four times by now
        consortium.bank_a.ledger.grants.reject(task_id, theirs)
        node.indexer.sync()
        final = done.result(timeout=10)
    assert final.status == "failed" and final.failure_reason == 1  # REJECTED
    assert seen == ["submitted", "failed"]
    with Session(node.engine) as session:
        asked = session.exec(
            select(AuditEntry).where(
                col(AuditEntry.actor).startswith(user),
                AuditEntry.subject == f"GET /api/v1/tasks/{task_id}",
            )
        ).all()
    assert len(asked) == 2  # the first look, then one long-poll answered by the change
