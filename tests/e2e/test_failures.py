"""Failures between real node processes: a peer dying mid-protocol, a node restarted mid-task."""

from __future__ import annotations

import csv
import secrets

from privledger.evm.contracts import FailureReason, TaskStatus

from .conftest import Running, restarted_after, wait_local_state
from .test_walking_path import FEE, grant, submit, wait_status

ROWS = 40_000  # long enough (seconds of ECDH) to kill a node in the middle


def big_dataset(running: Running, org: str, shared: list[str], rows: int = ROWS) -> str:
    path = running.import_dir(org) / f"{org}-big.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone"])
        for phone in shared:
            writer.writerow([phone])
        for _ in range(rows - len(shared)):
            writer.writerow([f"+1{secrets.randbelow(10**12):012d}"])
    body = {"path": str(path), "name": f"{org}-big", "level": 2, "unitPrice": 1}
    with running.client(org, "data_owner") as owner:
        response = owner.post("/datasets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["datasetId"])


def test_peer_dying_mid_protocol_fails_the_task_refunds_and_restart_recovers(
    running: Running,
) -> None:
    shared = [f"+44{secrets.randbelow(10**10):010d}" for _ in range(1_000)]
    mine, theirs = big_dataset(running, "telecom", shared), big_dataset(running, "bank-a", shared)
    grant(running, "bank-a", theirs, "telecom")
    ledger = running.ledger(0)
    telecom_org = running.org_ids["telecom"]
    balance_before = ledger.metering.balance_of(telecom_org)
    task = submit(running, mine, theirs)
    bank = running.nodes["bank-a"]
    wait_local_state(running, "bank-a", task["taskId"], "running", timeout_s=30)
    bank.kill()  # the bank's worker is inside the task
    with restarted_after(bank):
        with running.client("telecom", "operator") as client:
            final = wait_status(client, task["taskId"], {"failed", "settled"}, timeout_s=90)
        assert final["status"] == "failed", final
        assert final["failureReason"] == FailureReason.PEER_UNREACHABLE
        assert ledger.metering.balance_of(telecom_org) == balance_before + FEE  # refunded
        assert not ledger.tasks.anchors(task["taskId"])  # nothing half-done is anchored
        assert ledger.tasks.get_task(task["taskId"]).status is TaskStatus.FAILED

    # the restarted node closes its interrupted task cleanly and works again
    wait_local_state(running, "bank-a", task["taskId"], "failed", timeout_s=30)
    again = submit(running, running.register("telecom"), running.register("bank-a"))
    assert again["status"] == "submitted"  # the new dataset has no grant: approval needed
    dataset = again["inputs"][1]
    with bank.client("data_owner") as owner:
        assert (
            owner.post(
                f"/approvals/{again['taskId']}/{dataset}", json={"decision": "approve"}
            ).status_code
            == 200
        )
    with running.client("telecom", "operator") as client:
        assert wait_status(client, again["taskId"], {"settled", "failed"})["status"] == "settled"
