"""A grant's end reaches the grants its owner's node issued under it on derived datasets (terms'
``derive``, the registry's ``parentGrant``): once bank-a revokes mallory's grant, or it expires
or is used up, mallory can no longer run tasks on bank-a's aligned rows through the derived
grant, which never outlives its parent and shares its uses (red team h52 F8: after bank-a revoked
the grant, mallory ran ECDH on the derived rows under the derived grant and received 60 of
bank-a's keys; the derived grant had a fresh count of uses). The GrantRegistry binds it: before
it knew a grant's parent, a task under the derived grant was authorised on chain after bank-a
revoked the parent with its key on the contract, and took a use, for bank-a's node to refuse."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from privledger.evm.contracts import Kind, TaskStatus
from privledger.evm.errors import ChainRevert
from privledger.node.context import NodeContext
from privledger.node.grants import grant_dataset, lapse
from privledger.node.spec import PROTOCOL_IDS, SpecInput
from privledger.node.terms import GrantTerms, default_terms
from tests.evm.conftest import Consortium, reverts, telecom_api  # noqa: F401 (the in-process node)

from .malicious import Mallory, grant, wait_closed
from .test_requester_attacks import _phones, _spec

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


def _id(theirs: dict[str, Any]) -> bytes:
    return bytes.fromhex(theirs["datasetId"][2:])


def _forge_on_derived(mallory: Mallory, theirs: dict[str, Any]) -> int:
    return _forge(mallory, theirs["datasetId"], bytes.fromhex(theirs["grantId"][2:]))


def test_revoking_a_grant_ends_the_grants_on_its_derived_rows(mallory: Mallory) -> None:
    running = mallory.running
    data = running.register("bank-a")
    parent = grant(running, "bank-a", data, mallory.org_id, terms=TERMS, maxUses=4)
    theirs = _aligned(mallory, data)
    derived_grant = bytes.fromhex(theirs["grantId"][2:])

    # bank-a's key revokes the grant on the contract itself: its node has nothing to cascade,
    # and the derived grant is not revoked -- but the registry knows its parent and refuses it
    # (before it did, mallory's submission under it was authorised on chain and took a use)
    running.ledger(BANK_A_ACCOUNT).grants.revoke(parent)
    chain = running.ledger(0).grants
    assert not chain.get_grant(derived_grant).revoked
    with pytest.raises(ChainRevert) as refused:
        _forge_on_derived(mallory, theirs)
    assert refused.value.error == "GrantRegistryAncestorLapsed"
    assert not chain.is_usable(derived_grant, mallory.org_id, _id(theirs), Kind.PSI)
    assert chain.get_grant(derived_grant).used == 0

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

    # the registry counted the task on the derived rows against the parent too: the parent is
    # used up, and with it the derived grant (before, each had a use left on chain, and a task
    # under either was authorised, taking a use, for bank-a's node to refuse): mallory's node
    # asks bank-a to approve instead, and the contract refuses both grants
    assert chain.get_grant(parent).used == 3 and chain.get_grant(derived.grant_id).used == 1
    asked = mallory.submit({"protocol": "ecdh", "inputs": inputs})
    assert asked.status_code == 201 and asked.json()["status"] == "submitted", asked.text
    for forged, error in (
        (lambda: _forge_on_derived(mallory, theirs), "GrantRegistryAncestorLapsed"),
        (lambda: _forge(mallory, data, parent), "GrantRegistryExhausted"),
    ):
        with pytest.raises(ChainRevert) as refused:
            forged()
        assert refused.value.error == error


def test_a_chain_of_derivations_is_bounded_and_ends_with_its_root(
    consortium: Consortium,
    telecom_api: tuple[TestClient, NodeContext],  # noqa: F811
) -> None:
    """The registry holds a derived grant to its parents up to MAX_DERIVATIONS links, each checked
    when it is issued (no loop, no parent that does not exist, no chain too long for a worker to
    follow): a task under the last link counts against every grant above it, and once the root
    is revoked the contract refuses the last link and an honest worker names the root."""
    _, node = telecom_api
    bank_b, telecom = consortium.bank_b, consortium.telecom
    terms = default_terms(["psi"], ["phone"])
    max_derivations = node.ledger.grants.contract.functions.MAX_DERIVATIONS().call()
    datasets = [consortium.dataset(bank_b)]

    def issued(parent: bytes | None) -> bytes:
        named = terms.model_copy(update={"parent_grant": None if parent is None else _hex(parent)})
        return grant_dataset(
            bank_b.ledger,
            dataset=_hex(datasets[-1]),
            grantee_org=telecom.org_id,
            terms=named,
            expires_in_s=3_600,
            max_uses=5,
        )

    chain = [issued(None)]
    for _ in range(max_derivations):
        datasets.append(consortium.dataset(bank_b, parents=(datasets[-1],)))
        chain.append(issued(chain[-1]))
    datasets.append(consortium.dataset(bank_b, parents=(datasets[-1],)))
    with reverts("GrantRegistryInvalidParent"):  # one link too many
        issued(chain[-1])
    with reverts("GrantRegistryInvalidParent"):
        issued(secrets.token_bytes(32))

    def lapsed(grant_id: bytes) -> str | None:
        return lapse(node, node.ledger.grants.get_grant(grant_id), consortium.now())

    def use(link: int) -> int:
        return telecom.ledger.tasks.submit_task(
            spec_hash=secrets.token_bytes(32),
            kind=Kind.PSI,
            protocol=PROTOCOL_IDS["ecdh"],
            inputs=[datasets[link]],
            grant_ids=[chain[link]],
            participants=[telecom.org_id, bank_b.org_id],
            deadline=consortium.now() + 3_600,
        )

    assert lapsed(chain[max_derivations]) is None
    use(max_derivations)
    assert [node.ledger.grants.get_grant(g).used for g in chain] == [1] * len(chain)
    bank_b.ledger.grants.revoke(chain[0])
    assert f"{_hex(chain[0])}, revoked" in (lapsed(chain[3]) or "")
    with reverts("GrantRegistryAncestorLapsed"):
        use(max_derivations)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()
