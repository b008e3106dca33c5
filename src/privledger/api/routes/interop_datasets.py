"""Interop API, dataset authorisation (BFIA management layer section 4, "数据集互通": public
dataset list, authorisation apply, confirm, terminate, query).

Under an active partnership the requester's operator applies, on its own node, for the use of a
partner's dataset (which computation kinds — BFIA's ``auth_scope.COMPONENT`` — for how long and
how many times); the node forwards the signed application to the owner's node. The owner's data
owner confirms on its node: APPROVED issues a ``GrantRegistry`` grant on chain signed with the
data owner's key, and the grant id is the resource permit's token; REJECTED issues nothing.
Terminating revokes the grant on chain (on the owner's node, with the data owner's key: custodial).
The status reported is the chain's: a revoked grant reads TERMINATED wherever it was revoked, and
``usable`` says whether the grant would authorise a task now. The requester's node checks a
permit it is told about against the chain before it believes it.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlmodel import Session

from privledger.api.deps import Caller, DataOwner, Member, NodeDep, Operator, SessionDep, require
from privledger.api.errors import ApiError
from privledger.api.routes.grants import KIND_BITS, asset_columns
from privledger.api.routes.interop_common import (
    Decision,
    Empty,
    Envelope,
    Status,
    Wire,
    call_peer,
    ok,
    signed_body,
    signed_payload,
)
from privledger.api.routes.interop_nodes import ContractId, OrgIdField, is_active, load_contract
from privledger.api.schemas import KindName
from privledger.evm.contracts import Role
from privledger.node.context import NodeContext
from privledger.node.grants import grant_dataset, revoke_with_derived
from privledger.node.terms import default_terms
from privledger.store.assets import holds_asset
from privledger.store.events import events_named
from privledger.store.models import InteropDatasetAudit, utc_now

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/dataset", tags=["interop: dataset authorisation"])
peer_router = APIRouter(prefix="/interconn/dataset", tags=["interop: node to node"])

AuditId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="authorisation id")]
DatasetHex = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="dataset id")]


class AuthScope(Wire):
    COMPONENT: list[KindName] = Field(
        min_length=1, max_length=4, description="computation kinds allowed: psi, pir, stats, fl"
    )


class AuditApply(Wire):
    contract_id: ContractId
    dataset_id: DatasetHex
    auth_scope: AuthScope
    time_limit: int = Field(ge=60, le=366 * 86_400, description="seconds the grant lasts")
    times_limit: int = Field(ge=1, lt=2**32, description="uses the grant allows")


class AuditApplied(Wire):
    audit_id: str


class AuditConfirm(Wire):
    audit_id: AuditId
    status: Decision


class AuditRef(Wire):
    audit_id: AuditId


class ResourcePermit(Wire):
    token: str = Field(pattern=r"^0x[0-9a-f]{64}$", description="the grant id on chain")
    resource_level: int
    resource_type: str
    resource_id: str
    resource_node_id: str
    resource_inst_id: str
    request_node_id: str
    request_inst_id: str
    time_limit: int
    times_limit: int


class AuditRecord(Wire):
    """An authorisation as both nodes keep it (also the node-to-node payload)."""

    audit_id: AuditId
    contract_id: ContractId
    dataset_id: DatasetHex
    requester_inst_id: OrgIdField
    owner_inst_id: OrgIdField
    auth_scope: AuthScope
    time_limit: int = Field(ge=60, le=366 * 86_400)
    times_limit: int = Field(ge=1, lt=2**32)
    status: Status
    resource_permit: ResourcePermit | None = None


class AuditOut(AuditRecord):
    used: int | None = Field(description="uses of the grant so far")
    expiry: int | None = Field(description="unix seconds when the grant lapses")
    usable: bool = Field(description="whether the grant authorises a task of its first kind now")


class PublicDataset(Wire):
    dataset_id: str
    owner: str
    count: int
    level: int
    unit_price: int


class DatasetList(Wire):
    records: list[PublicDataset]
    total: int


DataOwnerOrOperator = Annotated[Caller, Depends(require(Role.DATA_OWNER, Role.OPERATOR))]


def _permit(row: InteropDatasetAudit, level: int) -> ResourcePermit | None:
    if row.grant_id is None:
        return None
    return ResourcePermit(
        token=row.grant_id,
        resource_level=level,
        resource_type="DATASET",
        resource_id=row.dataset_id,
        resource_node_id=str(row.owner_org),
        resource_inst_id=str(row.owner_org),
        request_node_id=str(row.requester_org),
        request_inst_id=str(row.requester_org),
        time_limit=row.time_limit,
        times_limit=row.times_limit,
    )


def _record(node: NodeContext, row: InteropDatasetAudit) -> AuditRecord:
    level = node.ledger.data.get_dataset(bytes.fromhex(row.dataset_id[2:])).level
    return AuditRecord(
        audit_id=row.audit_id,
        contract_id=row.contract_id,
        dataset_id=row.dataset_id,
        requester_inst_id=row.requester_org,
        owner_inst_id=row.owner_org,
        auth_scope=AuthScope(COMPONENT=row.kinds),
        time_limit=row.time_limit,
        times_limit=row.times_limit,
        status=row.status,
        resource_permit=_permit(row, level),
    )


def audit_out(node: NodeContext, row: InteropDatasetAudit) -> AuditOut:
    """The record with the grant's state read from the chain now."""
    record = _record(node, row)
    used = expiry = None
    usable = False
    if row.grant_id is not None:
        grant_id = bytes.fromhex(row.grant_id[2:])
        grant = node.ledger.grants.get_grant(grant_id)
        used, expiry = grant.used, grant.expiry
        if grant.revoked:
            record.status = "TERMINATED"
        usable = node.ledger.grants.is_usable(
            grant_id, row.requester_org, grant.dataset_id, KIND_BITS[row.kinds[0]]
        )
    return AuditOut(**record.model_dump(), used=used, expiry=expiry, usable=usable)


def _load(session: Session, audit_id: str) -> InteropDatasetAudit:
    row = session.get(InteropDatasetAudit, audit_id)
    if row is None:
        raise ApiError(404, "not_found", f"authorisation {audit_id} not found on this node")
    return row


@router.get("/pub/list", response_model=Envelope[DatasetList])
def public_datasets(
    contract_id: Annotated[str, Query(pattern=r"^[0-9a-f]{32}$")],
    _caller: Member,
    node: NodeDep,
    session: SessionDep,
) -> Envelope[DatasetList]:
    """The partner's datasets registered on chain (BFIA 4.1), not retired."""
    contract = load_contract(session, contract_id)
    partner = (
        contract.partner_org if contract.applicant_org == node.org_id else contract.applicant_org
    )
    node.indexer.sync()
    records = []
    for event in events_named(session, ["DatasetRegistered"]):
        if int(event.args["ownerOrg"]) != partner:
            continue
        dataset = node.ledger.data.get_dataset(bytes.fromhex(event.args["datasetId"][2:]))
        if not dataset.retired:
            records.append(
                PublicDataset(
                    dataset_id="0x" + dataset.dataset_id.hex(),
                    owner=str(partner),
                    count=dataset.row_count,
                    level=dataset.level,
                    unit_price=dataset.unit_price,
                )
            )
    return ok(DatasetList(records=records, total=len(records)))


@router.post("/audit/apply", response_model=Envelope[AuditApplied])
def apply(
    body: AuditApply,
    _caller: Operator,
    node: NodeDep,
    session: SessionDep,
) -> Envelope[AuditApplied]:
    """Apply for the use of a partner's dataset under an active contract (BFIA 4.3)."""
    contract = load_contract(session, body.contract_id)
    if not is_active(node, contract):
        raise ApiError(409, "contract_inactive", f"contract {body.contract_id} is not active")
    dataset = node.ledger.data.get_dataset(bytes.fromhex(body.dataset_id[2:]))
    partner = (
        contract.partner_org if contract.applicant_org == node.org_id else contract.applicant_org
    )
    if dataset.owner_org != partner:
        raise ApiError(403, "forbidden", "the dataset is not the contract partner's")
    if dataset.retired:
        raise ApiError(409, "retired", "the dataset is retired")
    row = InteropDatasetAudit(
        audit_id=secrets.token_hex(16),
        contract_id=body.contract_id,
        dataset_id=body.dataset_id.lower(),
        requester_org=node.org_id,
        owner_org=partner,
        kinds=list(dict.fromkeys(body.auth_scope.COMPONENT)),
        time_limit=body.time_limit,
        times_limit=body.times_limit,
        status="APPLIED",
    )
    call_peer(node, partner, "/interconn/dataset/audit/apply", _record(node, row))
    session.add(row)
    session.commit()
    return ok(AuditApplied(audit_id=row.audit_id))


def _tell(node: NodeContext, row: InteropDatasetAudit, path: str) -> None:
    try:
        call_peer(node, row.requester_org, path, _record(node, row))
    except ApiError as exc:
        logger.warning("authorisation %s: %s not delivered: %s", row.audit_id, path, exc.message)


@router.post("/audit/confirm", response_model=Envelope[AuditOut])
def confirm(
    body: AuditConfirm,
    caller: DataOwner,
    node: NodeDep,
    session: SessionDep,
) -> Envelope[AuditOut]:
    """Grant (on chain) or refuse an application for one of this node's datasets (BFIA 4.4)."""
    row = _load(session, body.audit_id)
    if row.owner_org != node.org_id:
        raise ApiError(403, "forbidden", "only the dataset's owner confirms an authorisation")
    if row.status != "APPLIED":
        raise ApiError(409, "wrong_status", f"the authorisation is {row.status}")
    if body.status == "APPROVED":
        contract = load_contract(session, row.contract_id)
        if not is_active(node, contract):
            raise ApiError(409, "contract_inactive", f"contract {row.contract_id} is not active")
        terms = default_terms(row.kinds, asset_columns(session, row.dataset_id))
        grant_id = grant_dataset(
            node.ledger_for(caller.user.address),
            dataset=row.dataset_id,
            grantee_org=row.requester_org,
            terms=terms,
            expires_in_s=row.time_limit,
            max_uses=row.times_limit,
        )
        row.grant_id, row.grantor = "0x" + grant_id.hex(), caller.user.address
    row.status, row.updated_at = body.status, utc_now()
    session.add(row)
    session.commit()
    _tell(node, row, "/interconn/dataset/audit/confirm")
    return ok(audit_out(node, row))


def _revoke(node: NodeContext, row: InteropDatasetAudit, signer: str) -> None:
    """Revoke the authorisation's grant and every grant derived under it (as DELETE /grants)."""
    if row.grant_id is not None:
        revoke_with_derived(node, node.ledger_for(signer), bytes.fromhex(row.grant_id[2:]))


@router.post("/audit/terminate", response_model=Envelope[AuditOut])
def terminate(
    body: AuditRef, caller: DataOwnerOrOperator, node: NodeDep, session: SessionDep
) -> Envelope[AuditOut]:
    """End an authorisation (BFIA 4.5): the owner's data owner revokes the grant on chain; the
    requester's operator asks the owner's node to revoke it."""
    row = _load(session, body.audit_id)
    if row.status not in ("APPLIED", "APPROVED"):
        raise ApiError(409, "wrong_status", f"the authorisation is already {row.status}")
    if row.owner_org == node.org_id:
        if caller.role is not Role.DATA_OWNER:
            raise ApiError(403, "forbidden", "the owner's data owner revokes an authorisation")
        _revoke(node, row, caller.user.address)
        row.status, row.updated_at = "TERMINATED", utc_now()
        session.add(row)
        session.commit()
        _tell(node, row, "/interconn/dataset/audit/terminate")
    else:
        call_peer(node, row.owner_org, "/interconn/dataset/audit/terminate", _record(node, row))
        row.status, row.updated_at = "TERMINATED", utc_now()
        session.add(row)
        session.commit()
    return ok(audit_out(node, row))


@router.get("/audit/query", response_model=Envelope[AuditOut])
def query(
    audit_id: Annotated[str, Query(pattern=r"^[0-9a-f]{32}$")],
    _caller: Member,
    node: NodeDep,
    session: SessionDep,
) -> Envelope[AuditOut]:
    """An authorisation's status, the grant's read from the chain (BFIA 4.6); an application still
    pending here is refreshed from the owner's node first."""
    row = _load(session, audit_id)
    if row.status == "APPLIED" and row.requester_org == node.org_id:
        try:
            data = call_peer(
                node, row.owner_org, "/interconn/dataset/audit/query", AuditRef(audit_id=audit_id)
            )
            _adopt(node, session, row, AuditRecord.model_validate(data))
        except ApiError as exc:
            logger.info("authorisation %s: owner not reachable: %s", audit_id, exc.message)
    return ok(audit_out(node, row))


def _adopt(
    node: NodeContext, session: Session, row: InteropDatasetAudit, theirs: AuditRecord
) -> None:
    """Take the owner's decision, checking any permit against the chain first."""
    if theirs.status == row.status:
        return
    if theirs.status == "APPROVED":
        permit = theirs.resource_permit
        if permit is None:
            raise ApiError(400, "invalid_request", "an approval carries its resource permit")
        grant = node.ledger.grants.get_grant(bytes.fromhex(permit.token[2:]))
        if (
            "0x" + grant.dataset_id.hex() != row.dataset_id
            or grant.grantee_org != row.requester_org
        ):
            raise ApiError(409, "bad_permit", "the permit's grant is not for this authorisation")
        row.grant_id = permit.token
    row.status, row.updated_at = theirs.status, utc_now()
    session.add(row)
    session.commit()


def _peer_apply(
    node: NodeContext, session: Session, source: int, record: AuditRecord
) -> Envelope[Empty]:
    if (record.requester_inst_id, record.owner_inst_id) != (source, node.org_id):
        raise ApiError(403, "forbidden", "an application names its sender and this organisation")
    known = session.get(InteropDatasetAudit, record.audit_id) is not None
    if record.status != "APPLIED" or known:
        raise ApiError(409, "wrong_status", "not a new application")
    contract = load_contract(session, record.contract_id)
    if not is_active(node, contract) or source not in (
        contract.applicant_org,
        contract.partner_org,
    ):
        raise ApiError(409, "contract_inactive", f"contract {record.contract_id} is not active")
    if not holds_asset(session, record.dataset_id):
        raise ApiError(404, "not_found", f"dataset {record.dataset_id} is not held here")
    session.add(
        InteropDatasetAudit(
            audit_id=record.audit_id,
            contract_id=record.contract_id,
            dataset_id=record.dataset_id.lower(),
            requester_org=source,
            owner_org=node.org_id,
            kinds=list(dict.fromkeys(record.auth_scope.COMPONENT)),
            time_limit=record.time_limit,
            times_limit=record.times_limit,
            status="APPLIED",
        )
    )
    session.commit()
    return ok(Empty())


def _peer_update(
    node: NodeContext, session: Session, source: int, record: AuditRecord, terminate: bool
) -> Envelope[Empty]:
    row = _load(session, record.audit_id)
    counterpart = row.owner_org if row.requester_org == node.org_id else row.requester_org
    if source != counterpart:
        raise ApiError(403, "forbidden", "only the counterpart updates an authorisation")
    if row.status not in ("APPLIED", "APPROVED"):
        raise ApiError(409, "wrong_status", f"the authorisation is already {row.status}")
    if terminate:
        if row.owner_org == node.org_id:
            _revoke(node, row, row.grantor or node.account.address)
        row.status, row.updated_at = "TERMINATED", utc_now()
        session.add(row)
        session.commit()
    elif source == row.owner_org and record.status in ("APPROVED", "REJECTED"):
        _adopt(node, session, row, record)
    else:
        raise ApiError(409, "wrong_status", f"cannot move the authorisation to {record.status}")
    return ok(Empty())


@peer_router.post(
    "/audit/apply", response_model=Envelope[Empty], openapi_extra=signed_body(AuditRecord)
)
async def peer_apply(request: Request, node: NodeDep, session: SessionDep) -> Envelope[Empty]:
    """A partner's application for one of this node's datasets (signed)."""
    source, record = await signed_payload(request, node, AuditRecord)
    return await run_in_threadpool(_peer_apply, node, session, source, record)


@peer_router.post(
    "/audit/confirm", response_model=Envelope[Empty], openapi_extra=signed_body(AuditRecord)
)
async def peer_confirm(request: Request, node: NodeDep, session: SessionDep) -> Envelope[Empty]:
    """The owner's decision on this node's application (signed; a permit is checked on chain)."""
    source, record = await signed_payload(request, node, AuditRecord)
    return await run_in_threadpool(_peer_update, node, session, source, record, False)


@peer_router.post(
    "/audit/terminate", response_model=Envelope[Empty], openapi_extra=signed_body(AuditRecord)
)
async def peer_terminate(request: Request, node: NodeDep, session: SessionDep) -> Envelope[Empty]:
    """The counterpart ended the authorisation; the owner's node revokes the grant (signed)."""
    source, record = await signed_payload(request, node, AuditRecord)
    return await run_in_threadpool(_peer_update, node, session, source, record, True)


@peer_router.post(
    "/audit/query", response_model=Envelope[AuditRecord], openapi_extra=signed_body(AuditRef)
)
async def peer_query(request: Request, node: NodeDep, session: SessionDep) -> Envelope[AuditRecord]:
    """An authorisation as this node holds it, for the counterpart only (signed)."""
    source, ref = await signed_payload(request, node, AuditRef)
    row = await run_in_threadpool(_load, session, ref.audit_id)
    if source not in (row.requester_org, row.owner_org):
        raise ApiError(404, "not_found", "no such authorisation with your organisation")
    return ok(await run_in_threadpool(_record, node, row))
