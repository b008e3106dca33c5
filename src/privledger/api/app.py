"""The node's FastAPI application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from privledger import __version__
from privledger.api.errors import error_body, install_error_handlers
from privledger.api.routes import (
    approvals,
    audit,
    datasets,
    grants,
    interop,
    models,
    onboarding,
    peer,
    projects,
    services,
    system,
    tasks,
    transactions,
    versions,
    workflow,
)
from privledger.console import router as console_router
from privledger.explorer import router as explorer_router
from privledger.node.audit import record_api_call
from privledger.node.context import NodeContext
from privledger.portal import router as portal_router

API_PREFIX = "/api/v1"
AUDITED = (f"{API_PREFIX}/", "/api/interop/")  # the node API and the interoperability API
API_VERSION = "1.1.0"  # see routes/versions.py CHANGELOG


def route_path(request: Request) -> str:
    """The request's path inside this app (without the ``/t/<org>`` mount of a tenant host)."""
    path, root = request.url.path, request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def create_app(node: NodeContext) -> FastAPI:
    app = FastAPI(
        title="privledger node API",
        version=API_VERSION,
        description=(
            f"privledger {__version__}: one organisation's node. Datasets, grants, approvals "
            "and tasks are recorded on the consortium's EVM ledger; peer endpoints carry sealed "
            "protocol frames."
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.node = node
    install_error_handlers(app)
    limit = node.settings.max_json_body_bytes

    @app.middleware("http")
    async def _limit_json_bodies(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length", "")
        is_frame = route_path(request) == f"{API_PREFIX}/peer/frames"
        if not is_frame and declared.isdigit() and int(declared) > limit:
            return JSONResponse(
                error_body("too_large", f"a request body is at most {limit} bytes"), 413
            )
        return await call_next(request)

    unaudited = (f"{API_PREFIX}/peer/frames", f"{API_PREFIX}/docs", f"{API_PREFIX}/openapi.json")

    @app.middleware("http")
    async def _audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Every API call goes into the audit log with its caller and status (F18); the peers'
        protocol frames are accounted for by the task they carry."""
        path = route_path(request)  # before routing: a mount rewrites the scope's root path
        response = await call_next(request)
        if path.startswith(AUDITED) and not path.startswith(unaudited):
            actor = getattr(request.state, "audit_actor", "anonymous")
            await run_in_threadpool(
                record_api_call, node, request.method, path, response.status_code, actor
            )
        return response

    for module in (
        system,
        datasets,
        grants,
        approvals,
        transactions,
        tasks,
        services,
        models,
        audit,
        onboarding,
        versions,
        projects,
        workflow,
        peer,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(services.calls, prefix=API_PREFIX)
    app.include_router(services.catalogue, prefix=API_PREFIX)
    app.include_router(explorer_router)
    app.include_router(portal_router)
    app.include_router(console_router)
    app.mount(interop.INTEROP_PREFIX, interop.create_interop_app(node))
    return app
