"""The auditor explorer and the operations cockpit served by every node: the ledger's blocks,
transactions, organisations, datasets, tasks, settlements and log batches, result verification,
the provenance graph, pipelines, and the consortium's activity and node health."""

from fastapi import APIRouter

from privledger.explorer import cockpit_routes, ledger_routes, pipeline_routes, routes

LOGIN_ROUTES = routes.LOGIN_ROUTES
router = APIRouter()
for module in (routes, ledger_routes, pipeline_routes, cockpit_routes):
    router.include_router(module.router)

__all__ = ["LOGIN_ROUTES", "router"]
