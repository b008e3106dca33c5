"""Horizontal FL between node processes survives a client that crashes mid-training, on chain
too: secure aggregation goes on with the clients that stayed, they and the aggregator anchor,
the dropped client is reported absent and recorded so on chain, and the task completes and
settles to the clients that stayed -- without waiting for its deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from privledger.demo import NodeProcess, prepare_node_home, start_node, wait_healthy
from privledger.evm.accounts import dev_account
from privledger.evm.contracts import Role, TaskStatus

from .conftest import Running, advance_chain_time, kill_when_started, log_mark, wait_until
from .test_explorer import REGULATOR, explorer, login
from .test_horizontal import horizontal_task
from .test_walking_path import FEE, fee_allocations, wait_status

INSURER_ACCOUNT = 7  # anvil dev account of a fourth data owner's admin (5: mallory, 6: police)
CLIENTS = ("bank-a", "bank-b", "telecom", "insurer")  # bank-a aggregates and trains its rows
VICTIM = "insurer"


@pytest.fixture(scope="module")
def insurer(running: Running) -> Iterator[NodeProcess]:
    """A fourth organisation with data and a node: with four contributors, secure aggregation
    still has the three it needs when one of them drops out."""
    admin = running.ledger(0)
    account = dev_account(INSURER_ACCOUNT)
    roles = Role.DATA_OWNER | Role.OPERATOR
    org_id = admin.orgs.register_org("insurer", account.address, "", bytes(32))
    admin.as_account(account).orgs.grant_roles(org_id, account.address, roles)
    settings = running.settings
    home, tokens = prepare_node_home(settings, "insurer", INSURER_ACCOUNT, roles)
    node = start_node(
        settings, "insurer", home, tokens, running.info["rpcUrl"], settings.var_dir / "logs"
    )
    running.nodes["insurer"], running.org_ids["insurer"] = node, org_id
    try:
        wait_healthy(node)
        yield node
    finally:
        node.stop()
        del running.nodes["insurer"], running.org_ids["insurer"]


def test_a_client_killed_mid_training_is_recorded_absent_and_the_rest_are_paid(
    running: Running, insurer: NodeProcess
) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    shards = np.array_split(np.random.default_rng(1).permutation(y.size), len(CLIENTS))
    # 400 rounds: long enough that the insurer dies while the clients train
    body = {**horizontal_task(running, CLIENTS, shards, x, y, rounds=400), "feeWei": FEE}
    marks = {org: log_mark(node) for org, node in running.nodes.items()}
    with running.client("bank-a", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        kill_when_started(running, VICTIM, task_id, marks, list(CLIENTS))
        ledger = running.ledger(0)
        wait_until(lambda: ledger.tasks.absence_of(task_id)[0] != 0, "the absence report", 120)
        task = ledger.tasks.get_task(task_id)
        assert task.status is TaskStatus.RUNNING  # the insurer keeps its grace to anchor
        seats, _ = ledger.tasks.absence_of(task_id)
        assert seats == 1 << task.participants.index(running.org_ids[VICTIM])
        advance_chain_time(running, ledger.tasks.absence_grace())  # instead of waiting it out
        final = wait_status(client, task_id, {"settled", "failed"}, timeout_s=120)
        assert final["status"] == "settled", final
        (item,) = client.get(f"/tasks/{task_id}/result").json()["items"]
    assert final["deadline"] > advance_chain_time(running, 0)  # long before its deadline
    events = [event["event"] for event in final["timeline"]]
    assert events.count("AbsenceReported") >= 1 and "TaskFailed" not in events
    absent = [e["args"]["org"] for e in final["timeline"] if e["event"] == "ParticipantAbsent"]
    assert absent == [running.org_ids[VICTIM]]
    anchored = {anchor.org_id for anchor in ledger.tasks.anchors(task_id)}
    assert anchored == {running.org_ids[org] for org in CLIENTS if org != VICTIM}
    # the model covers the clients that stayed; they are paid by their rows, the insurer nothing
    assert json.loads(item)["clients"] == sorted(
        running.org_ids[org] for org in CLIENTS if org != VICTIM
    )
    paid = fee_allocations(final)
    b, t = running.org_ids["bank-b"], running.org_ids["telecom"]
    assert sum(paid.values()) == FEE and set(paid) == {b, t}
    share = shards[1].size / (shards[1].size + shards[2].size)
    assert abs(paid[b] / FEE - share) <= 1e-4  # basis points
    # an auditor sees the absence in the task's story
    with explorer(running) as auditor:
        assert login(auditor, dev_account(REGULATOR)).status_code == 200
        page = auditor.get(f"/explorer/tasks/{task_id}")
        assert page.status_code == 200 and "absent: the task completed without it" in page.text
