"""A log batch mined in a block the node's index had not read yet when the chain reorganised is
in no forgotten block; its entries must still be put in a new batch (CI once found bank-a's audit
batch 82, anchored 0.5 s before a reorganisation, left pointing at another batch for good)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from web3.types import RPCEndpoint

from privledger.node.audit import anchor_pending_audit, audit_proof, record
from privledger.node.context import NodeContext
from privledger.node.logbook import release_vanished
from privledger.store.models import AuditEntry


def _entries(node: NodeContext) -> list[AuditEntry]:
    with Session(node.engine) as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


def test_a_batch_the_index_never_read_is_anchored_again_after_a_reorganisation(
    telecom_api: tuple[TestClient, NodeContext],
) -> None:
    _, node = telecom_api
    w3 = node.ledger.client.w3
    for n in range(3):
        record(node, action="data_access", actor="worker", subject=f"dataset {n}", outcome="read")
    snapshot = w3.provider.make_request(RPCEndpoint("evm_snapshot"), [])["result"]
    assert anchor_pending_audit(node) is not None
    first = _entries(node)
    assert all(entry.batch_tx is not None for entry in first)

    # the chain takes the batch's block back; the index never saw it, so nothing was forgotten
    assert w3.provider.make_request(RPCEndpoint("evm_revert"), [snapshot])["result"]
    assert not node.ledger.client.mined(first[0].batch_tx or "")
    node.ledger.client.close_nonce_gaps()
    assert release_vanished(node, AuditEntry, set()) == len(first)

    assert anchor_pending_audit(node) is not None
    for entry in _entries(node):
        proof = audit_proof(node, entry)
        assert proof is not None and entry.batch_tx != first[0].batch_tx
