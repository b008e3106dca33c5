"""RR22-PSI as a task between node processes: granted apart from KKRT (at the requester's node
and on chain), run with the intersection released to both, anchored and settled."""

from __future__ import annotations

import pytest

from privledger.evm.contracts import Kind
from privledger.evm.errors import ChainRevert
from privledger.node.spec import PROTOCOL_IDS
from privledger.sdk import NodeClient

from .conftest import Running
from .test_walking_path import FEE, fee_allocations, grant, submit, wait_status


def _granted_only(running: Running, owner: str, protocol: str) -> tuple[str, str]:
    """A new dataset of ``owner`` and the id of a grant to the telecom allowing ``protocol``."""
    dataset = running.register(owner)
    terms = {"protocols": [protocol], "columns": {"phone": ["join"]}, "outputs": ["both"]}
    return dataset, grant(running, owner, dataset, "telecom", terms=terms)["grantId"]


def test_rr22_task_is_granted_apart_from_kkrt_and_settles(running: Running) -> None:
    telecom = running.register("telecom")
    kkrt_data, kkrt_grant = _granted_only(running, "bank-a", "kkrt")
    rr22_data, rr22_grant = _granted_only(running, "bank-b", "rr22")
    inputs = {
        data: [{"dataset": telecom, "column": "phone"}, {"dataset": data, "column": "phone"}]
        for data in (kkrt_data, rr22_data)
    }
    with running.client("telecom", "operator") as client:
        for protocol, data in (("rr22", kkrt_data), ("kkrt", rr22_data)):
            body = {"protocol": protocol, "inputs": inputs[data], "feeWei": FEE, "output": "both"}
            refused = client.post("/tasks", json=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "terms_violation"
        size_only = {"protocol": "rr22", "inputs": inputs[rr22_data], "output": "size"}
        refused = client.post("/tasks", json=size_only)
        assert refused.status_code == 400 and "only ECDH-PSI" in refused.text

    # the telecom's own key, past its node: the chain refuses rr22 under the kkrt-only grant
    ledger = running.ledger(3)
    with pytest.raises(ChainRevert) as reverted:
        ledger.tasks.submit_task(
            spec_hash=bytes(32),
            kind=Kind.PSI,
            protocol=PROTOCOL_IDS["rr22"],
            inputs=[bytes.fromhex(telecom[2:]), bytes.fromhex(kkrt_data[2:])],
            grant_ids=[bytes(32), bytes.fromhex(kkrt_grant[2:])],
            participants=[running.org_ids["telecom"], running.org_ids["bank-a"]],
            deadline=int(running.w3.eth.get_block("latest")["timestamp"]) + 600,
            fee=FEE,
        )
    assert reverted.value.error == "GrantRegistryProtocolNotAllowed"

    task = submit(running, telecom, rr22_data, output="both", protocol="rr22")
    assert task["status"] == "authorised"
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task["taskId"], {"settled", "failed"})
        assert final["status"] == "settled", final
        mine = client.get(f"/tasks/{task['taskId']}/result").json()["items"]
    with running.client("bank-b", "operator") as client:
        theirs = client.get(f"/tasks/{task['taskId']}/result").json()["items"]
    expected = running.people["telecom"] & running.people["bank-b"]
    assert sorted(mine) == sorted(theirs) == sorted(expected) and len(expected) == 123
    anchors = ledger.tasks.anchors(task["taskId"])
    assert len(anchors) == 2 and anchors[0].transcript_hash == anchors[1].transcript_hash
    assert ledger.grants.get_grant(bytes.fromhex(rr22_grant[2:])).used == 1
    assert fee_allocations(final) == {running.org_ids["bank-b"]: FEE}


def test_a_psi_service_is_called_with_rr22(running: Running) -> None:
    bank_data, telecom_data = running.register("bank-b"), running.register("telecom")
    bank, telecom = running.nodes["bank-b"], running.nodes["telecom"]
    with NodeClient(bank.url, bank.tokens["data_owner"]) as owner:
        owner.define_service("rr22-match", bank_data, "phone", price_wei=10**15)
        owner.authorise_caller(
            "rr22-match", running.org_ids["telecom"], max_calls=1, expires_in_s=3_600
        )
    with NodeClient(telecom.url, telecom.tokens["operator"]) as caller:
        result = caller.call_service(
            provider=running.org_ids["bank-b"],
            service="rr22-match",
            dataset=telecom_data,
            column="phone",
            protocol="rr22",
        )
    assert set(result.items) == running.people["telecom"] & running.people["bank-b"]
    assert running.ledger(0).tasks.get_task(result.task_id).protocol == PROTOCOL_IDS["rr22"]
