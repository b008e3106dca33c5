"""An interop decision is anchored on chain in a batch of its own; a reorganisation that takes
that batch back has it anchored again, as the node's log batches are (test_log_reorg.py), also
when the index never read the batch's block."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session
from web3 import Web3
from web3.types import RPCEndpoint

from privledger.node.context import NodeContext
from privledger.store.models import InteropContract

from .conftest import Consortium

CONTRACT = "/api/interop/v1/node/contract"


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    return w3.provider.make_request(RPCEndpoint(method), list(params))["result"]


def test_an_interop_decision_taken_back_by_a_reorganisation_is_anchored_again(
    telecom_api: tuple[TestClient, NodeContext], consortium: Consortium
) -> None:
    client, node = telecom_api
    w3 = node.ledger.client.w3
    contract_id = secrets.token_hex(16)
    with Session(node.engine) as session:  # bank-a's application, as its node would send it
        session.add(
            InteropContract(
                contract_id=contract_id,
                applicant_org=consortium.bank_a.org_id,
                partner_org=node.org_id,
                status="APPLIED",
            )
        )
        session.commit()
    node.indexer.sync()
    snapshot = _rpc(w3, "evm_snapshot")
    _rpc(w3, "evm_mine")  # a block the index reads before the chain takes it back
    node.indexer.sync()
    answer = client.post(
        f"{CONTRACT}/confirm", json={"contract_id": contract_id, "status": "APPROVED"}
    )
    assert answer.status_code == 200, answer.text
    first = answer.json()["data"]
    assert node.ledger.client.mined(first["anchor_tx"])

    # the chain takes both blocks back: the index forgets the one it read, not the batch's
    assert _rpc(w3, "evm_revert", snapshot)
    assert not node.ledger.client.mined(first["anchor_tx"])
    node.indexer.sync()

    answer = client.get(f"{CONTRACT}/query", params={"contract_id": contract_id})
    again = answer.json()["data"]
    assert again["anchor_tx"] != first["anchor_tx"]
    assert node.ledger.client.mined(again["anchor_tx"])
    digest = bytes.fromhex(again["record_digest"][2:])
    assert node.ledger.anchors.verify(again["anchor_batch_id"], digest, [])
