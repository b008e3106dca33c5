"""Node health and the consortium's organisations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from privledger.api.deps import Member, NodeDep, OrgId
from privledger.api.errors import not_found
from privledger.api.schemas import Health, OrgOut
from privledger.evm.contracts import Org, OrgStatus
from privledger.wire.assets import Me

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
def health(node: NodeDep) -> Health:
    """Liveness, with this node's organisation and the chain head it sees."""
    return Health(
        status="ok",
        org=node.settings.org,
        org_id=node.org_id,
        chain_id=node.ledger.client.chain_id,
        block_number=node.ledger.client.w3.eth.block_number,
        endpoint=node.settings.endpoint,
    )


def _org_out(org: Org) -> OrgOut:
    return OrgOut(
        org_id=org.org_id,
        name=org.name,
        admin=org.admin,
        endpoint=org.endpoint,
        node_key="0x" + org.node_key.hex(),
        status=org.status.name.lower(),
    )


@router.get("/orgs", response_model=list[OrgOut])
def list_orgs(_caller: Member, node: NodeDep) -> list[OrgOut]:
    """Every organisation registered on chain."""
    orgs = node.ledger.orgs
    return [_org_out(orgs.get_org(org_id)) for org_id in range(1, orgs.org_count() + 1)]


@router.get("/orgs/{org_id}", response_model=OrgOut)
def get_org(org_id: OrgId, _caller: Member, node: NodeDep) -> OrgOut:
    org = node.ledger.orgs.get_org(org_id)
    if org.status is OrgStatus.NONE:
        raise not_found(f"organisation {org_id}")
    return _org_out(org)


@router.get("/policy")
def classification_policy(_caller: Member, node: NodeDep) -> dict[str, Any]:
    """This node's classification policies (F17), by level: the task kinds its data may serve,
    the smallest result released over it, whether results may also go to the provider."""
    return node.policies.to_json()


@router.get("/me", response_model=Me)
def who_am_i(caller: Member, node: NodeDep) -> Me:
    """The token's user, account and role, and this node's organisation."""
    role = str(caller.role.name).lower()
    return Me(user=caller.user.name, address=caller.user.address, role=role, org_id=node.org_id)
