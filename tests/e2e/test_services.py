"""PSI as a published service, end to end: define, publish, authorise on chain, call through the
SDK, refuse an unauthorised caller, and prove a call-log entry against its on-chain Merkle root."""

from __future__ import annotations

import time

import pytest

from privledger.evm.merkle import ProofDocument
from privledger.sdk import ApiError, Conflict, NodeClient

from .conftest import Running

PRICE = 10**15


def sdk(running: Running, org: str, role: str) -> NodeClient:
    node = running.nodes[org]
    return NodeClient(node.url, node.tokens[role])


def test_published_service_called_through_the_sdk_and_its_log_proven(running: Running) -> None:
    bank_data = running.register("bank-a")
    telecom_data = running.register("telecom")
    bank_b_data = running.register("bank-b")
    with sdk(running, "bank-a", "data_owner") as owner:
        service = owner.define_service(
            "customer-match", bank_data, "phone", output="requester", price_wei=PRICE
        )
        assert service.provider_org == running.org_ids["bank-a"]
        with pytest.raises(Conflict):
            owner.define_service("customer-match", bank_data, "phone")
        with pytest.raises(ApiError) as bad_column:
            owner.define_service("other", bank_data, "no-such-column")
        assert bad_column.value.code == "invalid_service"
        owner.authorise_caller(
            "customer-match", running.org_ids["telecom"], max_calls=5, expires_in_s=3_600
        )

    with sdk(running, "telecom", "operator") as caller:
        result = caller.call_service(
            provider=running.org_ids["bank-a"],
            service="customer-match",
            dataset=telecom_data,
            column="phone",
        )
    assert set(result.items) == running.people["telecom"] & running.people["bank-a"]
    assert result.task.fee == PRICE

    with sdk(running, "bank-b", "operator") as stranger, pytest.raises(ApiError) as refused:
        stranger.call_service(
            provider=running.org_ids["bank-a"],
            service="customer-match",
            dataset=bank_b_data,
            column="phone",
        )
    assert refused.value.status == 403 and refused.value.code == "not_authorised"

    with sdk(running, "bank-a", "data_owner") as owner:
        deadline = time.monotonic() + 30
        while True:
            log = owner.call_log("customer-match")
            if log and log[-1].batch_id is not None:
                break
            assert time.monotonic() < deadline, "the call log was not anchored"
            time.sleep(0.3)
        entry = log[-1]
        assert (entry.task_id, entry.outcome) == (result.task_id, "ran")
        assert entry.caller_org == running.org_ids["telecom"]
        document = owner.call_proof("customer-match", result.task_id)
    proof = ProofDocument.from_json(document.model_dump(by_alias=True))
    assert proof.verify_offline()
    ledger = running.ledger(0)
    assert ledger.anchors.verify(proof.batch_id, proof.digest, proof.proof)
    assert ledger.anchors.get_batch(proof.batch_id).root == proof.root

    with sdk(running, "bank-b", "operator") as stranger, pytest.raises(ApiError) as unknown:
        stranger.call_service(
            provider=running.org_ids["bank-a"], service="nope", dataset=bank_b_data, column="phone"
        )
    assert unknown.value.status == 404
