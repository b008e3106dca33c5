"""A requester's node refuses, at submission, a task spec its providers would refuse.

The red team's finding: a provider refuses a spec over ``MAX_SPEC_BYTES`` (4 MiB) when it fetches
it, as ``SPEC_MISMATCH``; the requester's node sent such a task on chain all the same, so the fee
was escrowed and a use of the grant consumed for a task that could only fail. Here the node's
JSON body limit is raised (an operator may), so that a body of ~5 MB gets through to the spec."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from privledger.api.app import create_app
from privledger.api.routes import tasks
from privledger.evm.contracts import Kind
from privledger.node.context import NodeContext
from privledger.node.peer_spec import MAX_SPEC_BYTES

from .conftest import Consortium

pytestmark = pytest.mark.security

FEATURES = 200  # the most one input may name
NAME = 25_000  # characters of each feature's name: 200 of them are ~5 MB


def _vertical_lr(mine: bytes, theirs: bytes, dealer: int, name_chars: int) -> dict[str, object]:
    """A vertical LR task whose own input names 200 made-up feature columns of ``name_chars``
    characters each (its dataset is registered on chain, not held here: nothing checks them)."""
    features = [f"f{index}-" + "x" * name_chars for index in range(FEATURES)]
    return {
        "protocol": "vertical-lr",
        "inputs": [
            {
                "dataset": "0x" + mine.hex(),
                "column": "phone",
                "valueColumn": "label",
                "features": features,
            },
            {"dataset": "0x" + theirs.hex(), "column": "phone", "features": ["phone"]},
        ],
        "dealer": dealer,
        "feeWei": 1_000,
    }


def test_a_spec_over_the_providers_bound_is_refused_before_the_chain(
    consortium: Consortium, telecom_api: tuple[TestClient, NodeContext]
) -> None:
    client, node = telecom_api
    roomy = replace(
        node, settings=node.settings.model_copy(update={"max_json_body_bytes": 8 << 20})
    )
    mine, theirs = consortium.dataset(consortium.telecom), consortium.dataset(consortium.bank_a)
    dealer = consortium.bank_b.org_id
    consortium.bank_b.ledger.orgs.set_dealer_service(dealer, True)
    grant = consortium.grant(
        theirs, consortium.bank_a, consortium.telecom, kinds=Kind.FL, uses=2, dealer=dealer
    )
    w3, requester = consortium.w3, consortium.telecom.address
    with TestClient(create_app(roomy), headers=client.headers) as api:
        nonce = w3.eth.get_transaction_count(requester)
        uses = consortium.bank_a.ledger.grants.get_grant(grant).used
        refused = api.post("/api/v1/tasks", json=_vertical_lr(mine, theirs, dealer, NAME))
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert error["code"] == "spec_too_large"
        assert str(MAX_SPEC_BYTES) in error["message"]
        assert w3.eth.get_transaction_count(requester) == nonce  # nothing sent, nothing escrowed
        assert consortium.bank_a.ledger.grants.get_grant(grant).used == uses
        # the same task with short names goes on chain
        fits = api.post("/api/v1/tasks", json=_vertical_lr(mine, theirs, dealer, 10))
        assert fits.status_code == 201, fits.text
        assert w3.eth.get_transaction_count(requester) == nonce + 1


def test_the_bound_is_the_providers_own() -> None:
    assert tasks.MAX_SPEC_BYTES is MAX_SPEC_BYTES == 4 * 2**20
