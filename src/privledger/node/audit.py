"""The audit log (F18): every API call, data access, model access and authorisation change, with
the caller, in a tamper-evident log anchored on chain in Merkle batches
(:mod:`privledger.node.logbook`).

An entry's digest is keccak256 over the canonical JSON of :func:`canonical` -- the entry's id,
time, action, actor, subject, outcome and task -- so an auditor holding an entry and its proof
document can recompute the digest and check it against the batch root on chain (the explorer's
verify page does both).
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session

from privledger.evm.merkle import ProofDocument
from privledger.node.context import NodeContext
from privledger.node.logbook import anchor_pending, entry_digest, proof_of
from privledger.store.models import AuditEntry

AUDIT_LABEL = b"audit-log".ljust(32, b"\0")
ACTIONS = ("api", "authorisation", "data_access", "model_access")
# mutating calls that change who may use what: grants, approvals, relayed signed transactions,
# service callers, model registration
_AUTHORISATION = re.compile(
    r"^/api/v1/(grants|approvals|transactions|services/[^/]+/callers|models)(/|$)"
)


def canonical(entry: AuditEntry) -> dict[str, Any]:
    """The fields the digest commits to."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "action": entry.action,
        "actor": entry.actor,
        "subject": entry.subject,
        "outcome": entry.outcome,
        "taskId": entry.task_id,
    }


def record(
    node: NodeContext,
    *,
    action: str,
    actor: str,
    subject: str,
    outcome: str,
    task_id: int | None = None,
) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    with Session(node.engine) as session:
        entry = AuditEntry(
            action=action,
            actor=actor,
            subject=subject[:500],
            outcome=outcome[:500],
            task_id=task_id,
            digest="",
        )
        session.add(entry)
        session.flush()  # the id is part of the digest
        entry.digest = entry_digest(canonical(entry))
        session.commit()


def record_api_call(node: NodeContext, method: str, path: str, status: int, actor: str) -> None:
    """One API call; a mutating call on grants, approvals, relays, callers or models is logged
    as an authorisation change."""
    mutating = method in ("POST", "PUT", "PATCH", "DELETE")
    action = "authorisation" if mutating and _AUTHORISATION.match(path) else "api"
    record(node, action=action, actor=actor, subject=f"{method} {path}", outcome=str(status))


def anchor_pending_audit(node: NodeContext) -> int | None:
    return anchor_pending(node, AuditEntry, AUDIT_LABEL)


def audit_proof(node: NodeContext, entry: AuditEntry) -> ProofDocument | None:
    return proof_of(node, AuditEntry, entry)
