"""Interop API, node partnership (BFIA management layer section 3, "节点互通": contract apply,
confirm, terminate, query; node query and health).

A partnership ("contract") is between two organisations registered on chain. The applicant's
operator applies on its own node, which forwards the signed application to the partner's node; the
partner's operator confirms (APPROVED or REJECTED) on its node; either side may terminate. Both
nodes keep the record; every decision (confirm, terminate) is anchored on chain by the deciding
node as a one-leaf ``BatchAnchor`` batch of the record's digest, so an auditor can check who
decided what and when; a partnership also ends when either organisation is suspended on chain.
A node that missed the partner's callback catches up when its users query the contract (BFIA's
"query as the fallback for a failed callback").
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlmodel import Session

from privledger.api.deps import Member, NodeDep, Operator, SessionDep
from privledger.api.errors import ApiError
from privledger.api.routes.interop_common import (
    INTEROP_VERSION,
    SYSTEM,
    Decision,
    Empty,
    Envelope,
    Status,
    Wire,
    anchor_again_after_reorganisations,
    anchor_record,
    call_peer,
    ok,
    record_digest,
    signed_body,
    signed_payload,
)
from privledger.evm.contracts import OrgStatus
from privledger.node.context import NodeContext
from privledger.store.models import InteropContract, utc_now

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/node", tags=["interop: node partnership"])
peer_router = APIRouter(prefix="/interconn/node", tags=["interop: node to node"])

ANCHOR_LABEL = "interop.contract"
ContractId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="contract id")]
OrgIdField = Annotated[int, Field(ge=1, lt=2**63, description="organisation id on chain")]


class ContractApply(Wire):
    inst_id: OrgIdField = Field(description="the partner organisation (BFIA inst_id)")
    description: str | None = Field(default=None, max_length=500)
    expired_time: int | None = Field(
        default=None, ge=0, lt=2**63, description="unix seconds after which the contract lapses"
    )


class ContractApplied(Wire):
    contract_id: str


class ContractConfirm(Wire):
    contract_id: ContractId
    status: Decision


class ContractRef(Wire):
    contract_id: ContractId


class ContractRecord(Wire):
    """A contract as both nodes keep it (also the node-to-node payload)."""

    contract_id: ContractId
    applicant_inst_id: OrgIdField
    partner_inst_id: OrgIdField
    status: Status
    description: str | None = Field(default=None, max_length=500)
    expired_time: int | None = Field(default=None, ge=0, lt=2**63)
    anchor_batch_id: int | None = Field(default=None, ge=1, lt=2**63)
    anchor_tx: str | None = Field(default=None, pattern=r"^0x[0-9a-f]{64}$")


class ContractOut(ContractRecord):
    record_digest: str = Field(description="keccak256 of the anchored record")
    active: bool = Field(description="approved, not lapsed, both organisations active on chain")


class NodeInfo(Wire):
    node_id: str
    inst_id: int
    institution: str
    name: str
    address: str
    auth_type: str
    auth_credential: str
    system: str
    system_version: str
    status: str


class Health(Wire):
    status: str


def anchored_fields(record: ContractRecord) -> dict[str, Any]:
    """What the anchored digest covers: the contract's parties, terms and status."""
    return record.model_dump(exclude={"anchor_batch_id", "anchor_tx", "description"})


def _record(row: InteropContract) -> ContractRecord:
    return ContractRecord(
        contract_id=row.contract_id,
        applicant_inst_id=row.applicant_org,
        partner_inst_id=row.partner_org,
        status=row.status,
        description=row.description,
        expired_time=row.expired_time,
        anchor_batch_id=row.anchor_batch_id,
        anchor_tx=row.anchor_tx,
    )


def is_active(node: NodeContext, row: InteropContract) -> bool:
    lapsed = row.expired_time is not None and row.expired_time < time.time()
    orgs = node.ledger.orgs
    return (
        row.status == "APPROVED"
        and not lapsed
        and orgs.is_active(row.applicant_org)
        and orgs.is_active(row.partner_org)
    )


def contract_out(node: NodeContext, row: InteropContract) -> ContractOut:
    record = _record(row)
    return ContractOut(
        **record.model_dump(),
        record_digest="0x" + record_digest(anchored_fields(record)).hex(),
        active=is_active(node, row),
    )


def load_contract(session: Session, contract_id: str) -> InteropContract:
    row = session.get(InteropContract, contract_id)
    if row is None:
        raise ApiError(404, "not_found", f"contract {contract_id} not found on this node")
    return row


def _counterpart(node: NodeContext, row: InteropContract) -> int:
    return row.partner_org if row.applicant_org == node.org_id else row.applicant_org


def anchored_record(row: InteropContract) -> dict[str, Any]:
    """What a contract's anchor on chain covers."""
    return anchored_fields(_record(row))


def follow_reorganisations(node: NodeContext) -> None:
    """A decision whose batch a reorganisation takes back is anchored again."""
    anchor_again_after_reorganisations(node, InteropContract, anchored_record, ANCHOR_LABEL)


def _decide(node: NodeContext, session: Session, row: InteropContract, status: Status) -> None:
    """Record a decision here and on chain."""
    row.status, row.updated_at = status, utc_now()
    row.anchor_batch_id, row.anchor_tx = anchor_record(node, anchored_record(row), ANCHOR_LABEL)
    session.add(row)
    session.commit()


def _tell(node: NodeContext, row: InteropContract, path: str) -> None:
    """Notify the counterpart; a missed notification is caught up by its next query."""
    try:
        call_peer(node, _counterpart(node, row), path, _record(row))
    except ApiError as exc:
        logger.warning("contract %s: %s not delivered: %s", row.contract_id, path, exc.message)


@router.post("/contract/apply", response_model=Envelope[ContractApplied])
def apply(
    body: ContractApply, _caller: Operator, node: NodeDep, session: SessionDep
) -> Envelope[ContractApplied]:
    """Apply for a partnership with another organisation's node (BFIA 3.1)."""
    if body.inst_id == node.org_id:
        raise ApiError(400, "invalid_partner", "an organisation does not partner with itself")
    partner = node.ledger.orgs.get_org(body.inst_id)
    if partner.status is not OrgStatus.ACTIVE:
        raise ApiError(409, "partner_inactive", f"organisation {body.inst_id} is not active")
    if body.expired_time is not None and body.expired_time <= time.time():
        raise ApiError(400, "invalid_expiry", "expired_time is in the past")
    row = InteropContract(
        contract_id=secrets.token_hex(16),
        applicant_org=node.org_id,
        partner_org=body.inst_id,
        status="APPLIED",
        description=body.description,
        expired_time=body.expired_time,
    )
    call_peer(node, body.inst_id, "/interconn/node/contract/apply", _record(row))
    session.add(row)
    session.commit()
    return ok(ContractApplied(contract_id=row.contract_id))


@router.post("/contract/confirm", response_model=Envelope[ContractOut])
def confirm(
    body: ContractConfirm, _caller: Operator, node: NodeDep, session: SessionDep
) -> Envelope[ContractOut]:
    """Accept or refuse a partnership applied for with this organisation (BFIA 3.2)."""
    row = load_contract(session, body.contract_id)
    if row.partner_org != node.org_id:
        raise ApiError(403, "forbidden", "only the partner applied to confirms a contract")
    if row.status != "APPLIED":
        raise ApiError(409, "wrong_status", f"the contract is {row.status}")
    _decide(node, session, row, body.status)
    _tell(node, row, "/interconn/node/contract/confirm")
    return ok(contract_out(node, row))


@router.post("/contract/terminate", response_model=Envelope[ContractOut])
def terminate(
    body: ContractRef, _caller: Operator, node: NodeDep, session: SessionDep
) -> Envelope[ContractOut]:
    """End a partnership; either side may (BFIA 3.3)."""
    row = load_contract(session, body.contract_id)
    if row.status not in ("APPLIED", "APPROVED"):
        raise ApiError(409, "wrong_status", f"the contract is already {row.status}")
    _decide(node, session, row, "TERMINATED")
    _tell(node, row, "/interconn/node/contract/terminate")
    return ok(contract_out(node, row))


@router.get("/contract/query", response_model=Envelope[ContractOut])
def query(
    contract_id: Annotated[str, Query(pattern=r"^[0-9a-f]{32}$")],
    _caller: Member,
    node: NodeDep,
    session: SessionDep,
) -> Envelope[ContractOut]:
    """A contract's status (BFIA 3.5); an application still pending here is refreshed from the
    partner's node first."""
    row = load_contract(session, contract_id)
    if row.status == "APPLIED" and row.applicant_org == node.org_id:
        try:
            data = call_peer(
                node,
                row.partner_org,
                "/interconn/node/contract/query",
                ContractRef(contract_id=contract_id),
            )
            theirs = ContractRecord.model_validate(data)
            if theirs.status != "APPLIED":
                row.status, row.updated_at = theirs.status, utc_now()
                row.anchor_batch_id, row.anchor_tx = theirs.anchor_batch_id, theirs.anchor_tx
                session.add(row)
                session.commit()
        except ApiError as exc:
            logger.info("contract %s: partner not reachable: %s", contract_id, exc.message)
    return ok(contract_out(node, row))


@router.get("/query", response_model=Envelope[NodeInfo])
def node_info(
    node_id: Annotated[int, Query(ge=1, lt=2**63, description="the organisation id on chain")],
    _caller: Member,
    node: NodeDep,
) -> Envelope[NodeInfo]:
    """A node's identity as registered on chain (BFIA 3.6)."""
    org = node.ledger.orgs.get_org(node_id)
    return ok(
        NodeInfo(
            node_id=str(org.org_id),
            inst_id=org.org_id,
            institution=org.name,
            name=org.name,
            address=org.endpoint,
            auth_type="X25519",
            auth_credential="0x" + org.node_key.hex(),
            system=SYSTEM,
            system_version=INTEROP_VERSION,
            status=org.status.name,
        )
    )


@router.get("/health", response_model=Envelope[Health])
def health() -> Envelope[Health]:
    """Liveness (BFIA 3.7); no token."""
    return ok(Health(status="ok"))


@peer_router.post(
    "/contract/apply", response_model=Envelope[Empty], openapi_extra=signed_body(ContractRecord)
)
async def peer_apply(request: Request, node: NodeDep, session: SessionDep) -> Envelope[Empty]:
    """A partner node's application (signed)."""
    source, record = await signed_payload(request, node, ContractRecord)
    return await run_in_threadpool(_store_application, node, session, source, record)


def _store_application(
    node: NodeContext, session: Session, source: int, record: ContractRecord
) -> Envelope[Empty]:
    if (record.applicant_inst_id, record.partner_inst_id) != (source, node.org_id):
        raise ApiError(403, "forbidden", "an application names its sender and this organisation")
    known = session.get(InteropContract, record.contract_id) is not None
    if record.status != "APPLIED" or known:
        raise ApiError(409, "wrong_status", "not a new application")
    session.add(
        InteropContract(
            contract_id=record.contract_id,
            applicant_org=source,
            partner_org=node.org_id,
            status="APPLIED",
            description=record.description,
            expired_time=record.expired_time,
        )
    )
    session.commit()
    return ok(Empty())


def _update(
    node: NodeContext,
    session: Session,
    source: int,
    record: ContractRecord,
    allowed: tuple[Status, ...],
) -> Envelope[Empty]:
    row = load_contract(session, record.contract_id)
    if source not in (row.applicant_org, row.partner_org) or source == node.org_id:
        raise ApiError(403, "forbidden", "only the counterpart updates a contract")
    if allowed == ("APPROVED", "REJECTED") and source != row.partner_org:
        raise ApiError(403, "forbidden", "only the partner applied to confirms a contract")
    if record.status not in allowed or row.status in ("REJECTED", "TERMINATED"):
        raise ApiError(
            409, "wrong_status", f"cannot move a {row.status} contract to {record.status}"
        )
    row.status, row.updated_at = record.status, utc_now()
    row.anchor_batch_id, row.anchor_tx = record.anchor_batch_id, record.anchor_tx
    session.add(row)
    session.commit()
    return ok(Empty())


@peer_router.post(
    "/contract/confirm", response_model=Envelope[Empty], openapi_extra=signed_body(ContractRecord)
)
async def peer_confirm(request: Request, node: NodeDep, session: SessionDep) -> Envelope[Empty]:
    """The partner's decision on this node's application (signed)."""
    source, record = await signed_payload(request, node, ContractRecord)
    return await run_in_threadpool(_update, node, session, source, record, ("APPROVED", "REJECTED"))


@peer_router.post(
    "/contract/terminate",
    response_model=Envelope[Empty],
    openapi_extra=signed_body(ContractRecord),
)
async def peer_terminate(request: Request, node: NodeDep, session: SessionDep) -> Envelope[Empty]:
    """The counterpart ended the contract (signed)."""
    source, record = await signed_payload(request, node, ContractRecord)
    return await run_in_threadpool(_update, node, session, source, record, ("TERMINATED",))


@peer_router.post(
    "/contract/query",
    response_model=Envelope[ContractRecord],
    openapi_extra=signed_body(ContractRef),
)
async def peer_query(
    request: Request, node: NodeDep, session: SessionDep
) -> Envelope[ContractRecord]:
    """A contract as this node holds it, for the counterpart only (signed)."""
    source, ref = await signed_payload(request, node, ContractRef)
    row = await run_in_threadpool(load_contract, session, ref.contract_id)
    if source not in (row.applicant_org, row.partner_org):
        raise ApiError(404, "not_found", "no such contract with your organisation")
    return ok(_record(row))
