"""What the CLI says of a task while it waits (issue 23, item 6): a task waiting for a data
owner's approval names the dataset and how its owner decides, rather than a spinner's "waiting for
the nodes"; the task came from the real node API (in process) on the real chain."""

from __future__ import annotations

from fastapi.testclient import TestClient

from privledger.cli.progress import task_line
from privledger.node.context import NodeContext

from .conftest import Consortium


def test_a_task_waiting_for_approval_says_for_whose(
    consortium: Consortium, telecom_api: tuple[TestClient, NodeContext]
) -> None:
    client, _ = telecom_api
    mine = "0x" + consortium.dataset(consortium.telecom).hex()
    theirs = "0x" + consortium.dataset(consortium.bank_a).hex()
    body = {
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}]
    }
    task = client.post("/api/v1/tasks", json=body).json()
    line = task_line(task)
    assert line.startswith(
        f"task {task['taskId']} (psi): submitted, waiting for the owners' approval of {theirs} "
    )
    assert f"`privledger approval approve {task['taskId']} <dataset>`" in line
    (listed,) = client.get("/api/v1/tasks").json()  # `privledger task list` prints these lines
    assert task_line(listed) == line
