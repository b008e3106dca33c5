"""A node that was down while the chain moved on catches up when it restarts: nothing is lost."""

from __future__ import annotations

from privledger.demo import wait_healthy
from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.node.terms import default_terms

from .conftest import Running, submit_as, wait_until
from .test_walking_path import FEE, grant, submit, wait_status

DOWN = "bank-b"
DOWN_DEV_ACCOUNT = 2  # bank-b's data owner (anvil development account 2)


def test_node_restarted_after_missing_events_catches_up(running: Running) -> None:
    telecom_org, bank_org = running.org_ids["telecom"], running.org_ids[DOWN]
    telecom_data, telecom_other = running.register("telecom"), running.register("telecom")
    granted, unapproved, own = (running.register(DOWN) for _ in range(3))
    ledger = running.ledger(0)
    bank = running.nodes[DOWN]

    bank.kill()  # a crash: no chance to flush or say goodbye
    try:
        # while it is down: its data owner grants (signed outside the node) ...
        owner = running.ledger(DOWN_DEV_ACCOUNT)
        expiry = int(running.w3.eth.get_block("latest")["timestamp"]) + 3_600
        terms = default_terms(["psi"], ["phone", "segment"])
        grant_from = owner.grants.grant(
            bytes.fromhex(granted[2:]),
            telecom_org,
            terms.chain_terms(expiry=expiry, max_uses=3),
            terms.canonical_json(),
        )
        # ... it receives a grant ...
        grant_to = grant(running, "telecom", telecom_other, DOWN)
        # ... a task is authorised with its data: its peer is down, the task fails cleanly
        authorised = submit(running, telecom_data, granted)
        assert authorised["status"] == "authorised"
        # ... and a task waits for its approval
        waiting = submit(running, telecom_data, unapproved, output="both")
        assert waiting["status"] == "submitted"
        with running.client("telecom", "operator") as client:
            failed = wait_status(client, authorised["taskId"], {"failed", "settled"}, 90)
        assert failed["status"] == "failed", failed
        assert failed["failureReason"] == FailureReason.PEER_UNREACHABLE
        refunds = [e["args"] for e in failed["timeline"] if e["event"] == "FeeRefunded"]
        assert refunds == [{"taskId": authorised["taskId"], "payerOrg": telecom_org, "amount": FEE}]
        assert not ledger.tasks.anchors(authorised["taskId"])
    finally:
        bank.restart()
        wait_healthy(bank)

    # its API lists what happened while it was down
    with bank.client("data_owner") as client:
        grants = {g["grantId"]: g for g in client.get("/grants").json()}
        assert grants["0x" + grant_from.hex()]["dataset"] == granted.lower()
        assert grants[grant_to["grantId"]]["granteeOrg"] == bank_org
        pending = [a for a in client.get("/approvals").json() if a["taskId"] == waiting["taskId"]]
        assert [(a["dataset"], a["status"]) for a in pending] == [(unapproved.lower(), "pending")]
    # its worker caught up too: the task that failed without it is closed locally, not re-run
    with bank.client("operator") as client:
        wait_until(
            lambda: client.get(f"/tasks/{authorised['taskId']}").json()["localState"] == "failed",
            "the restarted node never closed the task that failed while it was down",
        )
        view = client.get(f"/tasks/{authorised['taskId']}").json()
    assert view["status"] == "failed" and view["failureReason"] == FailureReason.PEER_UNREACHABLE
    assert [e["event"] for e in view["timeline"]].count("TaskFailed") == 1
    assert ledger.tasks.get_task(authorised["taskId"]).status is TaskStatus.FAILED
    assert not ledger.tasks.anchors(authorised["taskId"])

    # the task submitted while it was down runs to settlement once its owner approves
    with bank.client("data_owner") as client:
        decided = client.post(
            f"/approvals/{waiting['taskId']}/{unapproved}", json={"decision": "approve"}
        )
        assert decided.status_code == 200, decided.text
    with running.client("telecom", "operator") as client:
        final = wait_status(client, waiting["taskId"], {"settled", "failed"})
    assert final["status"] == "settled", final
    expected = running.people["telecom"] & running.people[DOWN]
    with bank.client("operator") as client:  # output to both
        assert set(client.get(f"/tasks/{waiting['taskId']}/result").json()["items"]) == expected

    # and the grant it received while down is usable by it
    own_task = submit_as(running, DOWN, own, telecom_other)
    assert own_task["status"] == "authorised"
    with bank.client("operator") as client:
        mine = wait_status(client, own_task["taskId"], {"settled", "failed"})
        assert mine["status"] == "settled", mine
        assert set(client.get(f"/tasks/{own_task['taskId']}/result").json()["items"]) == expected
    assert ledger.grants.get_grant(bytes.fromhex(grant_to["grantId"][2:])).used == 1
