"""The grant a submission runs under, through the real node API (in process) on the real anvil:
the node reads a dataset's grants from its index once and again only when a grant may have been
issued since, so these check that a grant issued after that read is used (also when the worker's
index moved past its block first), and that a cached grant revoked, used up or expired since is
never used: the chain decides at every submission."""

from __future__ import annotations

from fastapi.testclient import TestClient

from privledger.node.context import NodeContext

from .conftest import Consortium


def test_a_submission_uses_only_a_grant_the_chain_holds_usable_now(
    consortium: Consortium, telecom_api: tuple[TestClient, NodeContext]
) -> None:
    client, node = telecom_api
    bank_a, telecom = consortium.bank_a, consortium.telecom
    mine = "0x" + consortium.dataset(telecom).hex()
    theirs_id = consortium.dataset(bank_a)
    body = {
        "inputs": [
            {"dataset": mine, "column": "phone"},
            {"dataset": "0x" + theirs_id.hex(), "column": "phone"},
        ]
    }

    def submitted() -> str:
        response = client.post("/api/v1/tasks", json=body)
        assert response.status_code == 201, response.text
        status: str = response.json()["status"]
        return status

    assert submitted() == "submitted"  # no grant: bank-a is asked; its grants are now read

    consortium.grant(theirs_id, bank_a, telecom, uses=1)
    node.indexer.sync()  # as the worker does: the index moves past the grant's block
    assert submitted() == "authorised"  # the new grant is found
    assert submitted() == "submitted"  # its one use is used up

    revoked = consortium.grant(theirs_id, bank_a, telecom, uses=5)
    assert submitted() == "authorised"
    bank_a.ledger.grants.revoke(revoked)
    assert submitted() == "submitted"

    consortium.grant(theirs_id, bank_a, telecom, uses=5)  # for a day
    assert submitted() == "authorised"
    consortium.travel(86_400 + 60)
    assert submitted() == "submitted"
