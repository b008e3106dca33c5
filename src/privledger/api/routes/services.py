"""PSI as a published service (F12): a data owner defines and publishes a service over a dataset
and authorises callers on chain; callers run it from their own node; every call is logged and the
log is anchored in Merkle batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from sqlmodel import col, select

from privledger.api.deps import DataOwner, Member, NodeDep, Operator, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
from privledger.api.routes.grants import grant_out
from privledger.api.routes.tasks import plan_submission, submit_planned
from privledger.api.schemas import (
    CallerIn,
    CallLogOut,
    GrantOut,
    ServiceCallIn,
    ServiceIn,
    ServiceOut,
    TaskOut,
)
from privledger.node.context import NodeContext
from privledger.node.endpoints import usable_endpoint
from privledger.node.grants import ZERO32, GrantChoice, choose_grant, grant_dataset
from privledger.node.services import call_proof
from privledger.node.spec import PSI_PROTOCOLS, SpecInput, parse_spec, spec_error
from privledger.node.terms import GrantTerms, Price
from privledger.store.models import LocalDataset, PsiService, ServiceCall
from privledger.wire.assets import ProofOut

router = APIRouter(prefix="/services", tags=["services"])
catalogue = APIRouter(prefix="/peer/services", tags=["peer"])
calls = APIRouter(prefix="/service-calls", tags=["services"])


def service_out(node: NodeContext, service: PsiService) -> ServiceOut:
    return ServiceOut(
        name=service.name,
        provider_org=node.org_id,
        dataset=service.dataset_id,
        column=service.column,
        output="both" if service.output == "both" else "requester",
        price_wei=service.price_wei,
        description=service.description,
        active=service.active,
    )


def _service(session: SessionDep, name: str) -> PsiService:
    service = session.get(PsiService, name)
    if service is None:
        raise not_found(f"service {name!r}")
    return service


@router.post("", response_model=ServiceOut, status_code=201)
def define_service(
    body: ServiceIn, _caller: DataOwner, node: NodeDep, session: SessionDep
) -> ServiceOut:
    """Define and publish a PSI service over one of this node's datasets."""
    dataset = session.get(LocalDataset, body.dataset.lower())
    if dataset is None:
        raise not_found(f"dataset {body.dataset} on this node")
    if body.column not in dataset.columns:
        raise ApiError(400, "invalid_service", f"dataset has no column {body.column!r}")
    if session.get(PsiService, body.name) is not None:
        raise ApiError(409, "already_exists", f"a service named {body.name!r} exists")
    service = PsiService(
        name=body.name,
        dataset_id=dataset.dataset_id,
        column=body.column,
        output=body.output,
        price_wei=body.price_wei,
        description=body.description,
    )
    session.add(service)
    session.commit()
    return service_out(node, service)


@router.get("", response_model=list[ServiceOut])
def list_services(_caller: Member, node: NodeDep, session: SessionDep) -> list[ServiceOut]:
    return [
        service_out(node, s)
        for s in session.exec(select(PsiService).order_by(col(PsiService.name)))
    ]


@router.post("/{name}/callers", response_model=GrantOut, status_code=201)
def authorise_caller(
    name: str, body: CallerIn, caller: DataOwner, node: NodeDep, session: SessionDep
) -> GrantOut:
    """Authorise an organisation to call the service: a PSI grant on its dataset, on chain, whose
    public terms are the service's (its column as a join key, its output, its price as the fee
    floor), so that a task leaving the service out is held to them all the same."""
    service = _service(session, name)
    ledger = node.ledger_for(caller.user.address)
    grant_id = grant_dataset(
        ledger,
        dataset=service.dataset_id,
        grantee_org=body.org,
        terms=service_terms(service),
        expires_in_s=body.expires_in_s,
        max_uses=body.max_calls,
    )
    return grant_out(node, ledger.grants.get_grant(grant_id))


def service_terms(service: PsiService) -> GrantTerms:
    """The public terms of a published PSI service."""
    return GrantTerms(
        purpose=service.description,
        protocols=PSI_PROTOCOLS,
        columns={service.column: ("join",)},
        outputs=("both",) if service.output == "both" else ("requester",),
        price=Price(unit="call", wei=service.price_wei),
        min_fee_wei=service.price_wei,
        service=service.name,
    )


@router.get("/{name}/calls", response_model=list[CallLogOut])
def call_log(name: str, _caller: DataOwner, session: SessionDep) -> list[CallLogOut]:
    """Every call of the service, with the Merkle batch that anchors it."""
    _service(session, name)
    return log_entries(session, name)


@router.get("/{name}/calls/{task_id}/proof", response_model=ProofOut)
def call_log_proof(
    name: str, task_id: TaskId, _caller: Member, node: NodeDep, session: SessionDep
) -> dict[str, Any]:
    """The inclusion proof of one call-log entry against its on-chain Merkle root."""
    return entry_proof(node, session, name, task_id)


def log_entries(session: SessionDep, key: str) -> list[CallLogOut]:
    """The call log of one service or model (``key``), oldest first."""
    entries = session.exec(
        select(ServiceCall).where(ServiceCall.service == key).order_by(col(ServiceCall.id))
    )
    return [
        CallLogOut(
            task_id=entry.task_id,
            service=entry.service,
            caller_org=entry.caller_org,
            spec_hash=entry.spec_hash,
            outcome=entry.outcome,
            at=entry.at.isoformat(),
            digest=entry.digest,
            batch_id=entry.batch_id,
            batch_index=entry.batch_index,
        )
        for entry in entries
    ]


def entry_proof(node: NodeContext, session: SessionDep, key: str, task_id: int) -> dict[str, Any]:
    """A call-log entry with its Merkle inclusion proof (409 until its batch is anchored)."""
    entry = session.exec(
        select(ServiceCall).where(ServiceCall.service == key, ServiceCall.task_id == task_id)
    ).first()
    if entry is None:
        raise not_found(f"call of {key!r} by task {task_id}")
    proof = call_proof(node, entry)
    if proof is None:
        raise ApiError(409, "not_anchored_yet", "the entry is not in an anchored batch yet; retry")
    return {
        **proof.to_json(),
        "entry": {
            "service": entry.service,
            "taskId": entry.task_id,
            "callerOrg": entry.caller_org,
            "specHash": entry.spec_hash,
            "outcome": entry.outcome,
            "at": entry.at.isoformat(),
        },
    }


@catalogue.get("", response_model=list[ServiceOut])
def published_services(node: NodeDep, session: SessionDep) -> list[ServiceOut]:
    """This node's published services: public to the consortium."""
    rows = session.exec(select(PsiService).where(PsiService.active).order_by(col(PsiService.name)))
    return [service_out(node, s) for s in rows]


@catalogue.get("/{name}", response_model=ServiceOut)
def published_service(name: str, node: NodeDep, session: SessionDep) -> ServiceOut:
    service = _service(session, name)
    if not service.active:
        raise not_found(f"service {name!r}")
    return service_out(node, service)


def _fetch_service(node: NodeContext, provider: int, name: str) -> ServiceOut:
    endpoint = usable_endpoint(node.ledger.orgs.get_org(provider).endpoint)
    if not endpoint:
        raise ApiError(404, "not_found", f"organisation {provider} publishes no usable endpoint")
    try:
        response = node.http.get(f"{endpoint}/api/v1/peer/services/{name}")
    except Exception as exc:
        raise ApiError(
            502, "provider_unreachable", f"cannot reach organisation {provider}: {exc}"
        ) from exc
    if response.status_code == 404:
        raise not_found(f"service {name!r} of organisation {provider}")
    if response.status_code != 200:
        raise ApiError(502, "provider_error", f"the provider answered {response.status_code}")
    return ServiceOut.model_validate(response.json())


@calls.post("", response_model=TaskOut, status_code=201)
def call_service(
    body: ServiceCallIn, caller: Operator, node: NodeDep, session: SessionDep
) -> TaskOut:
    """Call another organisation's PSI service with one of this node's datasets."""
    service = _fetch_service(node, body.provider, body.service)
    own = session.get(LocalDataset, body.dataset.lower())
    if own is None:
        raise not_found(f"dataset {body.dataset} on this node")
    try:
        spec = parse_spec(
            {
                "protocol": body.protocol,
                "requester": node.org_id,
                "inputs": (
                    SpecInput(dataset=own.dataset_id, org=node.org_id, column=body.column),
                    SpecInput(dataset=service.dataset, org=body.provider, column=service.column),
                ),
                "output": service.output,
                "service": service.name,
            }
        )
    except ValidationError as exc:
        raise ApiError(
            502, "provider_error", f"the provider's service is unusable: {spec_error(exc)}"
        ) from exc
    if choose_grant(node, spec, spec.inputs[1], fee=service.price_wei) == GrantChoice(ZERO32):
        raise ApiError(
            403,
            "not_authorised",
            f"organisation {node.org_id} is not authorised to call {body.service!r} "
            f"of organisation {body.provider} (no usable grant)",
        )
    planned = plan_submission(
        node, caller, session, spec, fee_wei=service.price_wei, deadline_s=body.deadline_s
    )
    return submit_planned(node, session, planned)
