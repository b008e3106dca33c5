"""Grants: a data owner authorises another organisation's use of a dataset (signed on chain)."""

from __future__ import annotations

from fastapi import APIRouter

from privledger.api.deps import DataOwner, Member, NodeDep, SessionDep
from privledger.api.errors import not_found, parse_hex32
from privledger.api.schemas import GrantIn, GrantOut, KindName
from privledger.evm.contracts import Grant, Kind
from privledger.store.assets import held_asset_ids, holds_asset
from privledger.store.events import events_named

router = APIRouter(prefix="/grants", tags=["grants"])

KIND_BITS: dict[str, Kind] = {"psi": Kind.PSI, "pir": Kind.PIR, "stats": Kind.STATS, "fl": Kind.FL}


def kind_names(kinds: Kind) -> list[KindName]:
    names: list[KindName] = ["psi", "pir", "stats", "fl"]
    return [name for name in names if kinds & KIND_BITS[name]]


def grant_out(grant: Grant) -> GrantOut:
    return GrantOut(
        grant_id="0x" + grant.grant_id.hex(),
        dataset="0x" + grant.dataset_id.hex(),
        grantee_org=grant.grantee_org,
        kinds=kind_names(grant.kinds),
        expiry=grant.expiry,
        max_uses=grant.max_uses,
        used=grant.used,
        revoked=grant.revoked,
    )


@router.post("", response_model=GrantOut, status_code=201)
def issue_grant(body: GrantIn, caller: DataOwner, node: NodeDep, session: SessionDep) -> GrantOut:
    """Grant another organisation the use of one of this node's datasets."""
    if not holds_asset(session, body.dataset):
        raise not_found(f"dataset or model {body.dataset} on this node")
    kinds = Kind(0)
    for name in body.kinds:
        kinds |= KIND_BITS[name]
    ledger = node.ledger_for(caller.user.address)
    now = int(ledger.client.w3.eth.get_block("latest")["timestamp"])
    grant_id = ledger.grants.grant(
        bytes.fromhex(body.dataset[2:]),
        body.grantee_org,
        kinds,
        now + body.expires_in_s,
        body.max_uses,
    )
    return grant_out(ledger.grants.get_grant(grant_id))


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
        grant_out(node.ledger.grants.get_grant(parse_hex32(grant_id, "grant id")))
        for grant_id in relevant
    ]


@router.get("/{grant_id}", response_model=GrantOut)
def get_grant(grant_id: str, _caller: Member, node: NodeDep) -> GrantOut:
    return grant_out(node.ledger.grants.get_grant(parse_hex32(grant_id, "grant id")))


@router.delete("/{grant_id}", response_model=GrantOut)
def revoke_grant(grant_id: str, caller: DataOwner, node: NodeDep) -> GrantOut:
    """Revoke a grant on one of this organisation's datasets (signed on chain)."""
    ledger = node.ledger_for(caller.user.address)
    raw = parse_hex32(grant_id, "grant id")
    ledger.grants.revoke(raw)
    return grant_out(ledger.grants.get_grant(raw))
