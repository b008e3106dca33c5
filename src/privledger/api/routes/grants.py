"""Grants: a data owner authorises another organisation's use of a dataset (signed on chain)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError

from privledger.api.deps import DataOwner, Member, NodeDep, SessionDep
from privledger.api.errors import ApiError, not_found, parse_hex32
from privledger.api.schemas import GrantIn, GrantOut, KindName
from privledger.evm.contracts import Grant, Kind
from privledger.node.context import NodeContext
from privledger.node.grants import grant_dataset, revoke_with_derived, terms_of
from privledger.node.spec import MODEL_COLUMN
from privledger.node.terms import GrantTerms, default_terms
from privledger.store.assets import held_asset_ids
from privledger.store.events import events_named
from privledger.store.models import LocalDataset, LocalModel

router = APIRouter(prefix="/grants", tags=["grants"])

KIND_BITS: dict[str, Kind] = {"psi": Kind.PSI, "pir": Kind.PIR, "stats": Kind.STATS, "fl": Kind.FL}


def kind_names(kinds: Kind) -> list[KindName]:
    names: list[KindName] = ["psi", "pir", "stats", "fl"]
    return [name for name in names if kinds & KIND_BITS[name]]


def grant_out(node: NodeContext, grant: Grant) -> GrantOut:
    terms = terms_of(node, grant)
    return GrantOut(
        grant_id="0x" + grant.grant_id.hex(),
        dataset="0x" + grant.dataset_id.hex(),
        grantee_org=grant.grantee_org,
        kinds=kind_names(grant.kinds),
        expiry=grant.expiry,
        max_uses=grant.max_uses,
        used=grant.used,
        revoked=grant.revoked,
        min_fee_wei=grant.min_fee,
        terms_hash="0x" + grant.terms_hash.hex(),
        terms=None if terms is None else terms.model_dump(mode="json"),
    )


@router.post("", response_model=GrantOut, status_code=201)
def issue_grant(body: GrantIn, caller: DataOwner, node: NodeDep, session: SessionDep) -> GrantOut:
    """Grant another organisation the use of one of this node's datasets under terms (given, or
    the defaults of the kinds named: see docs/grants.md); the terms document is hashed on chain."""
    terms = grant_terms(body, asset_columns(session, body.dataset))
    ledger = node.ledger_for(caller.user.address)
    grant_id = grant_dataset(
        ledger,
        dataset=body.dataset,
        grantee_org=body.grantee_org,
        terms=terms,
        expires_in_s=body.expires_in_s,
        max_uses=body.max_uses,
    )
    return grant_out(node, ledger.grants.get_grant(grant_id))


def asset_columns(session: SessionDep, asset_id: str) -> list[str]:
    """The columns of a dataset held here, or the one column of a model; 404 for neither."""
    dataset = session.get(LocalDataset, asset_id.lower())
    if dataset is not None:
        return list(dataset.columns)
    if session.get(LocalModel, asset_id.lower()) is not None:
        return [MODEL_COLUMN]
    raise not_found(f"dataset or model {asset_id} on this node")


def grant_terms(body: GrantIn, columns: list[str]) -> GrantTerms:
    """The terms of a grant request: its own (every column named must exist), or the default
    terms of its kinds."""
    if body.terms is None:
        if not body.kinds:
            raise ApiError(400, "invalid_grant", "a grant names its kinds or its terms")
        return default_terms(body.kinds, columns)
    unknown = sorted(set(body.terms.columns) - set(columns))
    if unknown:
        raise ApiError(400, "invalid_grant", f"the dataset has no column {unknown[0]!r}")
    try:
        terms = GrantTerms.model_validate(body.terms.model_dump())
    except ValidationError as exc:
        raise ApiError(400, "invalid_grant", exc.errors()[0]["msg"]) from exc
    problem = terms.unenforceable()
    if problem is not None:
        raise ApiError(400, "invalid_grant", problem)
    return terms


@router.get("", response_model=list[GrantOut])
def list_grants(_caller: Member, node: NodeDep, session: SessionDep) -> list[GrantOut]:
    """Grants on this node's datasets and grants to this node's organisation, current state."""
    node.indexer.sync()
    ours = held_asset_ids(session)
    issued = events_named(session, ["GrantIssued"])
    relevant = [
        event.args["grantId"]
        for event in issued
        if event.args["datasetId"] in ours or event.args["granteeOrg"] == node.org_id
    ]
    return [
        grant_out(node, node.ledger.grants.get_grant(parse_hex32(grant_id, "grant id")))
        for grant_id in relevant
    ]


@router.get("/{grant_id}", response_model=GrantOut)
def get_grant(grant_id: str, _caller: Member, node: NodeDep) -> GrantOut:
    return grant_out(node, node.ledger.grants.get_grant(parse_hex32(grant_id, "grant id")))


@router.delete("/{grant_id}", response_model=GrantOut)
def revoke_grant(grant_id: str, caller: DataOwner, node: NodeDep) -> GrantOut:
    """Revoke a grant on one of this organisation's datasets, and the grants on the derived
    datasets this node issued under it (each signed on chain); a grant revoked already has only
    its derived grants revoked."""
    ledger = node.ledger_for(caller.user.address)
    raw = parse_hex32(grant_id, "grant id")
    revoke_with_derived(node, ledger, raw)
    return grant_out(node, ledger.grants.get_grant(raw))
