"""PSI as a published service (F12): the provider's call log and its anchoring in Merkle batches.

Every call of a service — run or refused — is logged by the provider's node. Pending entries are
anchored together: the Merkle root of their digests goes on chain in one ``BatchAnchor``
transaction, and each entry keeps its batch id and position, so any entry can later be proven
against the chain with a self-contained proof document.
"""

from __future__ import annotations

import json
import logging

from Crypto.Hash import keccak
from sqlmodel import Session, col, select

from privledger.evm.merkle import MerkleTree, ProofDocument
from privledger.node.context import NodeContext
from privledger.store.models import ServiceCall

logger = logging.getLogger(__name__)

BATCH_LABEL = b"psi-service-calls".ljust(32, b"\0")


def call_digest(
    service: str, task_id: int, caller_org: int, spec_hash: str, outcome: str, at: str
) -> str:
    """keccak256 of the entry's canonical JSON: what the Merkle batch commits to."""
    entry = {
        "at": at,
        "callerOrg": caller_org,
        "outcome": outcome,
        "service": service,
        "specHash": spec_hash,
        "taskId": task_id,
    }
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    return "0x" + keccak.new(digest_bits=256, data=canonical).hexdigest()


def log_call(
    node: NodeContext, *, service: str, task_id: int, caller_org: int, spec_hash: str, outcome: str
) -> None:
    """Record one call (idempotent per task)."""
    with Session(node.engine) as session:
        if session.exec(select(ServiceCall).where(ServiceCall.task_id == task_id)).first():
            return
        call = ServiceCall(
            service=service,
            task_id=task_id,
            caller_org=caller_org,
            spec_hash=spec_hash,
            outcome=outcome,
            digest="",
        )
        call.digest = call_digest(
            service, task_id, caller_org, spec_hash, outcome, call.at.isoformat()
        )
        session.add(call)
        session.commit()


def anchor_pending_calls(node: NodeContext) -> int | None:
    """Anchor every unanchored call in one Merkle batch; returns the batch id, if any."""
    with Session(node.engine) as session:
        pending = list(
            session.exec(
                select(ServiceCall)
                .where(col(ServiceCall.batch_id).is_(None))
                .order_by(col(ServiceCall.id))
            )
        )
        if not pending:
            return None
        tree = MerkleTree([bytes.fromhex(call.digest[2:]) for call in pending])
        batch_id, receipt = node.ledger.anchors.anchor_batch(tree.root, len(pending), BATCH_LABEL)
        for index, call in enumerate(pending):
            call.batch_id = batch_id
            call.batch_index = index
            call.batch_tx = receipt["transactionHash"].to_0x_hex()
            session.add(call)
        session.commit()
    logger.info("anchored %d service calls in batch %d", len(pending), batch_id)
    return batch_id


def call_proof(node: NodeContext, call: ServiceCall) -> ProofDocument | None:
    """The inclusion proof of an anchored call, rebuilt from its batch; None if not anchored yet."""
    if call.batch_id is None or call.batch_index is None or call.batch_tx is None:
        return None
    with Session(node.engine) as session:
        batch = list(
            session.exec(
                select(ServiceCall)
                .where(ServiceCall.batch_id == call.batch_id)
                .order_by(col(ServiceCall.batch_index))
            )
        )
    tree = MerkleTree([bytes.fromhex(entry.digest[2:]) for entry in batch])
    anchored = node.ledger.anchors.get_batch(call.batch_id)
    if anchored.root != tree.root:
        raise RuntimeError(f"batch {call.batch_id} on chain does not match the local call log")
    return ProofDocument(
        digest=bytes.fromhex(call.digest[2:]),
        proof=tree.proof(call.batch_index),
        root=tree.root,
        batch_id=call.batch_id,
        chain_id=node.ledger.client.chain_id,
        contract=node.ledger.anchors.address,
        tx_hash=call.batch_tx,
        block_number=anchored.block_number,
    )
