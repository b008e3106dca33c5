"""A grant that stops being valid after its task was authorised stops the task at the provider.

The task is authorised at submission with a valid grant; then, before the provider's worker has
looked at it, the grant is revoked (or expires). The provider's node is frozen (SIGSTOP) across
that window, so the order is deterministic: the requester's worker checks the still-valid grant and
starts the task on chain, the grant is spoiled, then the provider wakes up, re-reads the grant from
the chain, refuses before touching its data and records GRANT_INVALID, which refunds the fee.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from privledger.evm.contracts import FailureReason, TaskStatus

from .conftest import Running, advance_chain_time, paused, submit_as, wait_until
from .test_walking_path import FEE, grant, wait_status

REQUESTER, PROVIDER = "bank-a", "telecom"
PROVIDER_DEV_ACCOUNT = 3  # the telecom's data owner (anvil development account 3)


def _refused_by_provider(
    running: Running, spoil: Callable[[bytes], None], **grant_terms: Any
) -> dict[str, Any]:
    mine, theirs = running.register(REQUESTER), running.register(PROVIDER)
    issued = grant(running, PROVIDER, theirs, REQUESTER, maxUses=1, **grant_terms)
    grant_id = bytes.fromhex(issued["grantId"][2:])
    ledger = running.ledger(0)
    requester_org, provider_org = running.org_ids[REQUESTER], running.org_ids[PROVIDER]
    balance_before = ledger.metering.balance_of(requester_org)

    with paused(running.nodes[PROVIDER]) as resume:
        task = submit_as(running, REQUESTER, mine, theirs)
        task_id = task["taskId"]
        assert task["status"] == "authorised", task  # the grant was valid and is now used up
        assert ledger.grants.get_grant(grant_id).used == 1
        # the requester's worker re-checked the grant and started the task on chain
        wait_until(
            lambda: ledger.tasks.get_task(task_id).status is TaskStatus.RUNNING,
            "the requester never started the task",
        )
        spoil(grant_id)
        resume()

    with running.client(REQUESTER, "operator") as client:
        final = wait_status(client, task_id, {"failed", "settled"}, timeout_s=90)
    assert final["status"] == "failed", final
    assert final["failureReason"] == FailureReason.GRANT_INVALID
    # the provider recorded the failure, and the escrow went back to the requester
    failed = [e["args"] for e in final["timeline"] if e["event"] == "TaskFailed"]
    assert failed == [
        {"taskId": task_id, "org": provider_org, "reasonCode": int(FailureReason.GRANT_INVALID)}
    ]
    refunds = [e["args"] for e in final["timeline"] if e["event"] == "FeeRefunded"]
    assert refunds == [{"taskId": task_id, "payerOrg": requester_org, "amount": FEE}]
    assert ledger.metering.balance_of(requester_org) == balance_before + FEE
    assert ledger.tasks.escrow_of(task_id) == 0
    # nothing was anchored, by anyone
    assert not ledger.tasks.anchors(task_id)
    assert not [e for e in final["timeline"] if e["event"] == "ResultAnchored"]

    provider = running.nodes[PROVIDER]
    with provider.client("operator") as client:
        mine_view = client.get(f"/tasks/{task_id}").json()
    assert mine_view["localState"] == "failed"
    assert mine_view["localFailure"].startswith("GRANT_INVALID"), mine_view["localFailure"]
    # refused before the data was touched: the worker never read the dataset
    with provider.client("data_owner") as owner:
        reads = owner.get("/audit", params={"action": "data_access", "taskId": task_id})
        assert reads.status_code == 200, reads.text
        assert reads.json() == []
    return final


def test_grant_revoked_after_authorisation_stops_the_task(running: Running) -> None:
    owner = running.ledger(PROVIDER_DEV_ACCOUNT)  # signed outside the (frozen) node

    def revoke(grant_id: bytes) -> None:
        owner.grants.revoke(grant_id)
        assert owner.grants.get_grant(grant_id).revoked

    _refused_by_provider(running, revoke)


def test_grant_expired_after_authorisation_stops_the_task(running: Running) -> None:
    ledger = running.ledger(0)

    def expire(grant_id: bytes) -> None:
        expiry = ledger.grants.get_grant(grant_id).expiry
        now = int(running.w3.eth.get_block("latest")["timestamp"])
        assert now < expiry  # still valid when the task was authorised and started
        assert advance_chain_time(running, expiry - now + 1) >= expiry
        assert not ledger.grants.get_grant(grant_id).revoked

    _refused_by_provider(running, expire, expiresInS=60)  # the shortest grant the API issues
