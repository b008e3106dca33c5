"""The node's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from privledger import __version__
from privledger.api.errors import ERROR_RESPONSES, install_error_handlers
from privledger.api.metrics import TaskLogContext
from privledger.api.metrics import router as metrics_router
from privledger.api.middleware import AuditCalls, LimitJsonBodies, LimitUncredentialedCalls
from privledger.api.routes import (
    approvals,
    audit,
    components,
    datasets,
    grants,
    interop,
    models,
    onboarding,
    peer,
    pipelines,
    projects,
    services,
    system,
    tasks,
    tokens,
    transactions,
    versions,
    workflow,
)
from privledger.api.threads import bounded_request_threads
from privledger.console import router as console_router
from privledger.explorer import LOGIN_ROUTES
from privledger.explorer import router as explorer_router
from privledger.node.audit import AuditWriter
from privledger.node.context import NodeContext
from privledger.node.metrics import METRICS_PATH
from privledger.portal import router as portal_router

API_PREFIX = "/api/v1"
AUDITED = (f"{API_PREFIX}/", "/api/interop/")  # the node API and the interoperability API
API_VERSION = "1.6.0"  # see routes/versions.py CHANGELOG
# Swagger UI's and ReDoc's scripts and styles, served by the node from the locked fastapi-offline
# package rather than a CDN, so the docs work on a network without internet access; outside the
# audited API prefix, so that loading the docs page is neither audited nor throttled.
DOCS_ASSETS = "/docs-assets"


def operation_id(route: APIRoute) -> str:
    """A route's operation id is its function's name (``issue_grant``) rather than FastAPI's
    default (``issue_grant_api_v1_grants_post``): the names generated clients give methods."""
    return route.name


def create_app(node: NodeContext) -> FastAPI:
    app = FastAPIOffline(
        title="privledger node API",
        version=API_VERSION,
        description=(
            f"privledger {__version__}: one organisation's node. Datasets, grants, approvals "
            "and tasks are recorded on the consortium's EVM ledger; peer endpoints carry sealed "
            "protocol frames."
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        generate_unique_id_function=operation_id,
        responses=ERROR_RESPONSES,
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=f"{API_PREFIX}/redoc",
        static_url=DOCS_ASSETS,
        lifespan=bounded_request_threads,
    )
    app.state.node = node
    install_error_handlers(app)
    for module in (
        system,
        datasets,
        grants,
        approvals,
        transactions,
        tasks,
        components,
        services,
        models,
        audit,
        onboarding,
        versions,
        projects,
        pipelines,
        workflow,
        peer,
        tokens,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(services.calls, prefix=API_PREFIX)
    app.include_router(services.catalogue, prefix=API_PREFIX)
    app.include_router(explorer_router)
    app.include_router(portal_router)
    app.include_router(console_router)
    app.include_router(metrics_router)
    app.mount(interop.INTEROP_PREFIX, interop.create_interop_app(node))
    frames = f"{API_PREFIX}/peer/frames"
    app.add_middleware(
        LimitJsonBodies,
        limit=node.settings.max_json_body_bytes,
        exempt=(frames, f"{API_PREFIX}{datasets.UPLOAD_PATH}"),
    )  # inside the audit: a refused body is audited too
    app.add_middleware(
        LimitUncredentialedCalls,
        rate=node.settings.anonymous_calls_per_s,
        burst=node.settings.anonymous_burst,
        limited=(*AUDITED, METRICS_PATH, *LOGIN_ROUTES),
        # frame streams, task specs and derived datasets answer only calls signed by another
        # organisation's node (checked against the chain; frames are also limited per peer and
        # task by the mailbox): a peer must not wait on whoever shares its address failing to
        # authenticate (the public service catalogue under /peer/services stays limited)
        exempt=(frames, f"{API_PREFIX}/peer/tasks/"),
        enveloped=(interop.INTEROP_PREFIX,),
    )  # outside the body limit: a throttled caller's body is never read
    app.add_middleware(
        AuditCalls,
        writer=AuditWriter(node.engine, tally_s=node.settings.anonymous_audit_s),
        audited=AUDITED,
        # the peers' protocol frames are accounted for by the task they carry
        unaudited=(
            frames,
            f"{API_PREFIX}/docs",
            f"{API_PREFIX}/redoc",
            f"{API_PREFIX}/openapi.json",
        ),
    )
    app.add_middleware(TaskLogContext)  # outermost: the access line of the request names it too
    return app
