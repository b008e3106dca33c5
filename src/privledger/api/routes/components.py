"""The computation components this node has installed (docs/components.md): what a partner's
task may name, and what a grant's ``components`` term lists by code hash."""

from __future__ import annotations

from fastapi import APIRouter

from privledger.api.deps import Member
from privledger.node.components import Component, installed
from privledger.wire.components import ComponentOut

router = APIRouter(prefix="/components", tags=["components"])


def component_out(component: Component) -> ComponentOut:
    low, high = component.parties
    params = component.params_model
    return ComponentOut(
        name=component.name,
        version=component.version,
        hash=component.ref.hash,
        protocols=list(component.protocols),
        kind=component.kind,
        min_parties=low,
        max_parties=high,
        roles=list(component.roles),
        outputs=list(component.outputs),
        output_schema=component.output_schema,
        enforces=list(component.enforces),
        security=component.security,
        params=None if params is None else params.model_json_schema(),
        builtin=component.builtin,
    )


@router.get("", response_model=list[ComponentOut])
def list_components(_caller: Member) -> list[ComponentOut]:
    """Every installed component, once each, by name."""
    unique = {id(component): component for component in installed().values()}
    return sorted((component_out(c) for c in unique.values()), key=lambda out: out.name)
