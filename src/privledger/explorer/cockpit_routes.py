"""The operations cockpit (F19) for auditors and operators: the page, and the JSON its script
polls to refresh the charts and the node health."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlmodel import Session

from privledger.api.deps import NodeDep
from privledger.node.context import NodeContext

from .cockpit import HealthProbe, MetricsCache, snapshot
from .directory import Directory
from .resources import resource_totals
from .web import PREFIX, ExplorerRoute, Viewer, page

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ExplorerRoute)
REFRESH_S = 5

_STATE_LOCK = threading.Lock()


@dataclass
class CockpitState:
    probe: HealthProbe = field(default_factory=HealthProbe)
    metrics: MetricsCache = field(default_factory=MetricsCache)


def _state(request: Request) -> CockpitState:
    """The app's cockpit state, created on first use."""
    app_state = request.app.state
    with _STATE_LOCK:
        state: CockpitState | None = getattr(app_state, "cockpit", None)
        if state is None:
            state = CockpitState()
            app_state.cockpit = state
    return state


def _snapshot(request: Request, node: NodeContext) -> dict[str, Any]:
    state = _state(request)
    node.indexer.sync()
    with Session(node.engine) as session:
        directory = Directory.load(session)
        now = state.metrics.get(session, directory)
        resources = resource_totals(session)  # this node's records: not keyed by the index
    return {**snapshot(now, state.probe.check(directory)), "resources": resources}


@router.get("/cockpit")
def cockpit_page(request: Request, node: NodeDep, viewer: Viewer) -> Response:
    context = {"s": _snapshot(request, node), "refresh_s": REFRESH_S}
    return page(request, "cockpit.html", context, viewer=viewer)


@router.get("/api/cockpit")
def cockpit_json(request: Request, node: NodeDep, _viewer: Viewer) -> dict[str, Any]:
    return _snapshot(request, node)
