"""The node's audit log (F18) for its org admins, auditors and data owners (who see who used
their data): entries, and the Merkle proof of any entry against the chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from sqlmodel import col, select

from privledger.api.deps import Caller, NodeDep, SessionDep, require
from privledger.api.errors import ApiError, not_found
from privledger.evm.contracts import Role
from privledger.node.audit import audit_proof, canonical
from privledger.store.models import AuditEntry
from privledger.wire.assets import AuditAction, AuditEntryOut, ProofOut

router = APIRouter(prefix="/audit", tags=["audit"])
AuditReader = Annotated[Caller, Depends(require(Role.ORG_ADMIN, Role.AUDITOR, Role.DATA_OWNER))]
EntryId = Annotated[int, Path(ge=1, lt=2**63, description="audit entry id")]


def _out(entry: AuditEntry) -> dict[str, Any]:
    return {
        **canonical(entry),
        "digest": entry.digest,
        "batchId": entry.batch_id,
        "batchIndex": entry.batch_index,
    }


@router.get("", response_model=list[AuditEntryOut])
def audit_log(
    _caller: AuditReader,
    session: SessionDep,
    action: AuditAction | None = None,
    task_id: Annotated[int | None, Query(alias="taskId", ge=1, lt=2**63)] = None,
    after: Annotated[int, Query(ge=0, lt=2**63, description="entries with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Entries oldest first, ``limit`` at a time after the id ``after`` (keyset pagination)."""
    query = select(AuditEntry).where(col(AuditEntry.id) > after)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if task_id is not None:
        query = query.where(AuditEntry.task_id == task_id)
    rows = session.exec(query.order_by(col(AuditEntry.id)).limit(limit))
    return [_out(row) for row in rows]


@router.get("/{entry_id}/proof", response_model=ProofOut)
def audit_entry_proof(
    entry_id: EntryId, _caller: AuditReader, node: NodeDep, session: SessionDep
) -> dict[str, Any]:
    """A self-contained proof document for one entry, with the entry it commits to."""
    entry = session.get(AuditEntry, entry_id)
    if entry is None:
        raise not_found(f"audit entry {entry_id}")
    proof = audit_proof(node, entry)
    if proof is None:
        raise ApiError(409, "not_anchored_yet", "the entry is not in an anchored batch yet; retry")
    return {**proof.to_json(), "entry": canonical(entry)}
