"""A grant's end reaches the grants its owner's node issued under it on derived datasets (terms'
``derive``): once bank-a revokes mallory's grant, or it expires or is used up, mallory can no
longer run tasks on bank-a's aligned rows through the derived grant, which never outlives its
parent and shares the uses its parent had left (red team h52 F8: after bank-a revoked the grant,
mallory ran ECDH on the derived rows under the derived grant and received 60 of bank-a's keys;
the derived grant had a fresh count of uses)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from privledger.evm.contracts import FailureReason, TaskStatus
from privledger.evm.errors import ChainRevert
from privledger.node.context import NodeContext
from privledger.node.grants import MAX_DERIVATIONS, grant_dataset, lapse
from privledger.node.spec import SpecInput
from privledger.node.terms import GrantTerms, default_terms
from tests.evm.conftest import Consortium, telecom_api  # noqa: F401 (the in-process node)

from .malicious import Mallory, grant, wait_closed
from .test_requester_attacks import _failed_for, _phones, _spec

pytestmark = pytest.mark.security

BANK_A_ACCOUNT = 1  # anvil development account of bank-a's data owner (the demo's)
TERMS = {
    "protocols": ["ecdh"],
    "columns": {"phone": ["join"]},
    "outputs": ["requester", "both"],
    "derive": {},
}


def _psi_to_both(mallory: Mallory, data: str, shared: int) -> int:
    """An ECDH-PSI of mallory's keys (``shared`` of bank-a's customers) with bank-a's ``data``,
    output to both, settled: its id."""
    keys = mallory.register(["phone"], _phones(mallory, "bank-a", shared, 10))
    inputs = [{"dataset": keys, "column": "phone"}, {"dataset": data, "column": "phone"}]
    response = mallory.submit({"protocol": "ecdh", "output": "both", "inputs": inputs})
    assert response.status_code == 201, response.text
    task_id = int(response.json()["taskId"])
    assert wait_closed(mallory.running, task_id, timeout_s=180).status is TaskStatus.SETTLED
    return task_id


def _aligned(mallory: Mallory, data: str) -> dict[str, Any]:
    """bank-a's 60 rows aligned by a PSI under mallory's grant on ``data``, derived and granted
    to mallory by bank-a's node: its answer."""
    task_id = _psi_to_both(mallory, data, 60)
    with mallory.client("data_owner") as owner:
        response = owner.post(f"/tasks/{task_id}/derived", json={})
    assert response.status_code == 200, response.text
    (theirs,) = [d for d in response.json() if d["orgId"] == mallory.running.org_ids["bank-a"]]
    assert theirs["grantId"] and theirs["rowCount"] == 60
    return dict(theirs)


def _forge(mallory: Mallory, dataset: str, grant_id: bytes) -> int:
    """An ECDH-PSI of 60 of bank-a's customers against bank-a's ``dataset`` under ``grant_id``,
    submitted with mallory's key (its worker leaves the task alone, as a node modified to skip
    its own checks would run it: what must refuse it is bank-a's node)."""
    probe = mallory.register(["phone"], _phones(mallory, "bank-a", 60, 0))
    items = [
        SpecInput(dataset=probe, org=mallory.org_id, column="phone"),
        SpecInput(dataset=dataset, org=mallory.running.org_ids["bank-a"], column="phone"),
    ]
    return mallory.forge(_spec(mallory, "ecdh", items), [bytes(32), grant_id])


def _forge_on_derived(mallory: Mallory, theirs: dict[str, Any]) -> int:
    return _forge(mallory, theirs["datasetId"], bytes.fromhex(theirs["grantId"][2:]))


def test_revoking_a_grant_ends_the_grants_on_its_derived_rows(mallory: Mallory) -> None:
    running = mallory.running
    data = running.register("bank-a")
    parent = grant(running, "bank-a", data, mallory.org_id, terms=TERMS, maxUses=4)
    theirs = _aligned(mallory, data)
    derived_grant = bytes.fromhex(theirs["grantId"][2:])

    # bank-a's key revokes the grant on the contract itself: its node has nothing to cascade,
    # and the derived grant is still usable on chain -- bank-a's node refuses it all the same
    running.ledger(BANK_A_ACCOUNT).grants.revoke(parent)
    assert not running.ledger(0).grants.get_grant(derived_grant).revoked
    before = mallory.balance()
    _failed_for(mallory, _forge_on_derived(mallory, theirs), FailureReason.GRANT_INVALID, before)

    # revoking it through bank-a's node (again) revokes the derived grant on chain too
    with running.client("bank-a", "data_owner") as owner:
        response = owner.delete(f"/grants/0x{parent.hex()}")
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] is True
    assert running.ledger(0).grants.get_grant(derived_grant).revoked
    with pytest.raises(ChainRevert):
        _forge_on_derived(mallory, theirs)


def test_a_derived_grant_and_its_parent_share_the_parent_s_uses(mallory: Mallory) -> None:
    running = mallory.running
    data = running.register("bank-a")
    parent = grant(running, "bank-a", data, mallory.org_id, terms=TERMS, maxUses=3)
    theirs = _aligned(mallory, data)
    chain = running.ledger(0).grants
    derived = chain.get_grant(bytes.fromhex(theirs["grantId"][2:]))
    original = chain.get_grant(parent)
    assert (original.used, derived.max_uses) == (1, 2)  # the parent's uses left, not 3 more
    assert derived.expiry <= original.expiry
    with running.client("bank-a", "data_owner") as owner:
        record = owner.get(f"/grants/{theirs['grantId']}").json()
    assert GrantTerms.model_validate(record["terms"]).parent_grant == "0x" + parent.hex()

    # mallory's node runs a PSI on the derived rows, then one on the original data: the third
    # and last of the parent's uses
    probe = mallory.register(["phone"], _phones(mallory, "bank-a", 60, 0))
    inputs = [
        {"dataset": probe, "column": "phone"},
        {"dataset": theirs["datasetId"], "column": "phone"},
    ]
    response = mallory.submit({"protocol": "ecdh", "inputs": inputs})
    assert response.status_code == 201, response.text
    on_derived = int(response.json()["taskId"])
    assert wait_closed(running, on_derived, timeout_s=180).status is TaskStatus.SETTLED
    second = _psi_to_both(mallory, data, 30)
    with mallory.client("data_owner") as owner:  # no more derived rows under it
        refused = owner.post(f"/tasks/{second}/derived", json={})
    assert refused.status_code == 409, refused.text
    assert "no use left" in refused.json()["error"]["message"]

    # the chain still counts a use left on each grant: mallory's node no longer picks them (it
    # asks bank-a to approve), and bank-a's node refuses both
    assert chain.get_grant(parent).used == 2 and chain.get_grant(derived.grant_id).used == 1
    asked = mallory.submit({"protocol": "ecdh", "inputs": inputs})
    assert asked.status_code == 201 and asked.json()["status"] == "submitted", asked.text
    before = mallory.balance()
    _failed_for(mallory, _forge_on_derived(mallory, theirs), FailureReason.GRANT_INVALID, before)
    before = mallory.balance()
    _failed_for(mallory, _forge(mallory, data, parent), FailureReason.GRANT_INVALID, before)


def test_a_chain_of_parents_is_followed_only_so_far_and_only_on_chain(
    consortium: Consortium,
    telecom_api: tuple[TestClient, NodeContext],  # noqa: F811
) -> None:
    """An accomplice provider's grants may name parents that do not exist, or each other in a
    chain too long to follow (a loop is one): an honest worker refuses them without reading on."""
    _, node = telecom_api
    bank_b, telecom = consortium.bank_b, consortium.telecom
    dataset = "0x" + consortium.dataset(bank_b).hex()
    terms = default_terms(["psi"], ["phone"])

    def issued(parent: str | None) -> bytes:
        named = terms.model_copy(update={"parent_grant": parent})
        return grant_dataset(
            bank_b.ledger,
            dataset=dataset,
            grantee_org=telecom.org_id,
            terms=named,
            expires_in_s=3_600,
            max_uses=1,
        )

    def lapsed(grant_id: bytes) -> str | None:
        return lapse(node, node.ledger.grants.get_grant(grant_id), consortium.now())

    chain = [issued(None)]
    for _ in range(MAX_DERIVATIONS + 1):
        chain.append(issued("0x" + chain[-1].hex()))
    assert lapsed(chain[MAX_DERIVATIONS]) is None
    assert "more than" in (lapsed(chain[-1]) or "")
    assert "not on chain" in (lapsed(issued("0x" + secrets.token_bytes(32).hex())) or "")
    bank_b.ledger.grants.revoke(chain[0])
    assert f"0x{chain[0].hex()}, revoked" in (lapsed(chain[3]) or "")
