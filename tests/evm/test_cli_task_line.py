"""What the CLI says of a task while it waits (issue 23, item 6): a task waiting for a data
owner's approval names the dataset and how its owner decides, rather than a spinner's "waiting for
the nodes"; the task came from the real node API (in process) on the real chain."""

from __future__ import annotations

from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from privledger.cli.progress import task_line
from privledger.node.context import NodeContext
from privledger.wire.tasks import TaskOut

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
    # the CLI reads the answers through the SDK, as the API's own TaskOut
    task = TaskOut.model_validate_json(client.post("/api/v1/tasks", json=body).content)
    line = task_line(task)
    assert line.startswith(
        f"task {task.task_id} (psi): submitted, waiting for the owners' approval of {theirs} "
    )
    assert f"`privledger approval approve {task.task_id} <dataset>`" in line
    listed = TypeAdapter(list[TaskOut]).validate_json(client.get("/api/v1/tasks").content)
    assert [task_line(one) for one in listed] == [line]  # `privledger task list` prints these
