"""PSI as a published service (F12): the provider's call log and its anchoring in Merkle batches.

Every call of a service or a model — run or refused — is logged by the provider's node and
anchored in Merkle batches (:mod:`privledger.node.logbook`), so any entry can later be proven
against the chain with a self-contained proof document.
"""

from __future__ import annotations

from sqlmodel import Session, select

from privledger.evm.merkle import ProofDocument
from privledger.node.context import NodeContext
from privledger.node.logbook import anchor_pending, entry_digest, proof_of
from privledger.store.models import ServiceCall

BATCH_LABEL = b"psi-service-calls".ljust(32, b"\0")


def call_digest(
    service: str, task_id: int, caller_org: int, spec_hash: str, outcome: str, at: str
) -> str:
    """keccak256 of the entry's canonical JSON: what the Merkle batch commits to."""
    return entry_digest(
        {
            "at": at,
            "callerOrg": caller_org,
            "outcome": outcome,
            "service": service,
            "specHash": spec_hash,
            "taskId": task_id,
        }
    )


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
    return anchor_pending(node, ServiceCall, BATCH_LABEL)


def call_proof(node: NodeContext, call: ServiceCall) -> ProofDocument | None:
    """The inclusion proof of an anchored call; None if not anchored yet."""
    return proof_of(node, ServiceCall, call)
