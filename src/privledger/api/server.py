"""The node process: open the node, publish its endpoint and key on chain, start the worker, serve
the API. It composes the node layer (worker, store, chain) with the API that serves it, so it sits
above both (nothing under ``privledger.node`` imports the API; ``tests/test_layers.py``).

A node may also host several organisations (tenants, F13) in one process: each tenant is a
complete node of its own -- its home (keystore, database, datasets, results), its tokens, its
worker, its API and peer endpoints under ``/t/<org>`` -- so isolation of data, keys and tasks is
by construction: no route of one tenant reads another's database, and a token is only known to
its own tenant. Capacity is shared: the tenants' sync routes run in the process's one bounded
set of request threads (:mod:`privledger.api.threads`).

A node may instead serve its client API from several processes (``api_workers``, on PostgreSQL;
:mod:`privledger.node.processes`): the primary runs the worker and the peer endpoint, and every
process accepts the API's connections on a socket of its own on the API port.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import socket
from collections.abc import Sequence
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import TypedDict

import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from privledger.api.app import API_PREFIX, create_app
from privledger.api.connections import header_deadline, raise_open_files_limit
from privledger.api.errors import install_error_handlers
from privledger.api.threads import bounded_request_threads
from privledger.config import NodeSettings
from privledger.node.context import NodeContext, open_node, publish_endpoint
from privledger.node.metrics import METRICS_PATH
from privledger.node.processes import (
    ApiProcesses,
    ProcessNonces,
    check_api_workers,
    die_with_parent,
    join,
    listen,
    per_process_limits,
    share_between_processes,
)
from privledger.node.selftest import run_selftest
from privledger.node.tls import ensure_certificate
from privledger.node.worker import Worker
from privledger.observability.logs import configure_logging, server_logging
from privledger.shutdown import stops_on_signals

TENANT_PREFIX = "/t"
PRIVATE_UMASK = 0o077  # files 0600, folders 0700

logger = logging.getLogger(__name__)


def keep_files_private(home: Path) -> None:
    """What the node writes from now on (dataset copies, results, its database, keys) is
    readable by its own user only, and so is what its home already holds: on a shared host, or
    an image with other users, nothing of one organisation's data is world-readable."""
    os.umask(PRIVATE_UMASK)
    for folder, _folders, files in os.walk(home):  # symlinked folders are not followed
        os.chmod(folder, 0o700)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


@stops_on_signals
def serve(settings: NodeSettings) -> None:
    """Serve until a stop signal (SIGINT, SIGTERM, SIGHUP); the worker, any other API process
    and the store stop with the server, before the process exits."""
    check_api_workers(settings)
    configure_logging(settings.log_level, json_lines=settings.log_json)
    run_selftest()  # a broken crypto stack stops the node here, before it takes any task
    keep_files_private(settings.home)
    settings = per_process_limits(settings)
    node = open_node(settings)
    others = ApiProcesses(serve_api, settings) if settings.api_workers > 1 else None
    notices = share_between_processes(node, others.nonces) if others is not None else None
    sockets = [listen(settings.host, settings.port, shared=others is not None)]  # the API's
    if settings.peer_port not in (None, settings.port):
        sockets.append(listen(settings.host, settings.peer_port))
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if settings.tls:  # HTTPS with a certificate that the org admin account endorses
        ensure_certificate(node.account, node.org_id, settings.endpoint, cert, key)
    worker = Worker(node)
    try:
        publish_endpoint(node)
        if others is not None:
            others.start(settings.api_workers - 1)
        worker.start()
        logger.info(
            "node %s (org %d): peers at %s, API on port %d (%d processes)",
            *(settings.org, node.org_id, settings.endpoint, settings.port, settings.api_workers),
        )
        app = create_app(node)
        build_routes(app)
        run_server(app, settings, sockets)
    finally:
        worker.stop()
        if others is not None:
            others.stop()
        if notices is not None:
            notices.stop()
        node.close()
        logger.info("node %s stopped", settings.org)


@stops_on_signals
def serve_api(settings: NodeSettings, ready: Event, log_level: int, nonces: ProcessNonces) -> None:
    """One more process serving the node's client API on a socket of its own on the API port
    (started by :func:`serve`); peer frames are answered 421, they go to the endpoint on chain."""
    die_with_parent()
    logging.getLogger().setLevel(log_level)
    configure_logging(settings.log_level, json_lines=settings.log_json)
    os.umask(PRIVATE_UMASK)
    node = open_node(settings)
    node.indexer.leave_rewinds()  # to the primary, whose worker follows them
    notices = share_between_processes(node, nonces)
    try:
        app = create_app(node)
        build_routes(app)
        api_socket = join(settings.host, settings.port)
        ready.set()
        run_server(PeerFramesElsewhere(app, settings.endpoint), settings, [api_socket])
    finally:
        notices.stop()
        node.close()


class ProxyOptions(TypedDict):
    proxy_headers: bool
    forwarded_allow_ips: list[str]


def proxy_options(settings: NodeSettings) -> ProxyOptions:
    """uvicorn's reading of ``X-Forwarded-For``: only on connections from the node's
    ``trusted_proxies``, whose client is then the right-most address not one of them; with none
    (the default) never. uvicorn's own default trusts 127.0.0.1 and ::1, under which any process
    on the node's host could name itself any address and so escape the per-address limits."""
    trusted = [str(network) for network in settings.trusted_proxies]
    return ProxyOptions(proxy_headers=bool(trusted), forwarded_allow_ips=trusted)


def run_server(app: ASGIApp, settings: NodeSettings, sockets: list[socket.socket]) -> None:
    """Serve ``app`` on ``sockets`` (HTTPS with the node's certificate when it has TLS) until
    interrupted."""
    tune_allocator()
    freeze_startup_objects()
    tls = settings.tls
    raise_open_files_limit()
    config = uvicorn.Config(
        app,
        http=header_deadline(settings.trusted_proxies),
        **server_logging(access_log=settings.access_log),
        **proxy_options(settings),
        timeout_graceful_shutdown=5,
        ssl_certfile=settings.tls_cert_file if tls else None,
        ssl_keyfile=settings.tls_key_file if tls else None,
    )
    uvicorn.Server(config).run(sockets=sockets)


FRAMES_PATH = f"{API_PREFIX}/peer/frames"


class PeerFramesElsewhere:
    """In an API process beside the primary: frames sent to the API port are refused (421
    ``misdirected``) with the endpoint that takes them, instead of waiting for a channel that
    never opens in this process; so are scrapes of the metrics, which only the primary's worker
    holds."""

    def __init__(self, app: ASGIApp, endpoint: str) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in (FRAMES_PATH, METRICS_PATH):
            message = (
                f"peer frames and metrics are at this node's endpoint on chain, {self.endpoint}"
            )
            body = {"error": {"code": "misdirected", "message": message}}
            await JSONResponse(body, 421)(scope, receive, send)
            return
        await self.app(scope, receive, send)


_NO_ROUTE = {"type": "http", "method": "GET", "path": "/\x00", "root_path": "", "headers": []}


def build_routes(app: Starlette) -> None:
    """Build every route table of ``app`` and the applications mounted in it now. FastAPI builds
    an included router's table on the first request that reaches it (~45 ms for a node's API),
    on the event loop: the first frames of the first task waited for it. A path that matches no
    route makes every table get built."""
    for route in app.router.routes:
        route.matches(_NO_ROUTE)
        if isinstance(route, Mount) and isinstance(route.app, Starlette):
            build_routes(route.app)


def freeze_startup_objects() -> None:
    """Collect once, then take every object that exists after start-up (modules, the app, ABI
    tables, ...) out of the garbage collector's sight: its full collections then scan only what
    requests and tasks create. A full scan of a started node took ~140 ms and could land in the
    middle of a protocol run."""
    gc.collect()
    gc.freeze()


MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap and are reused
TRIM_THRESHOLD = 128 << 20  # free heap kept for the next task before it goes back to the OS
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def tune_allocator() -> bool:
    """Let glibc's malloc keep and reuse the buffers of a protocol run (numpy arrays and frames
    of a few MiB) instead of mapping fresh pages for each, which cost a 2^16 PSI ~9,000 page
    faults per task; blocks over :data:`MMAP_THRESHOLD` (the arrays of very large sets) are
    still mapped and returned at once. False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def tenant_app(nodes: Sequence[NodeContext]) -> FastAPI:
    """One application mounting each tenant's complete node API under ``/t/<org>``."""
    app = FastAPI(
        title="privledger tenant host",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=bounded_request_threads,  # the mounted apps' own lifespans do not run
    )
    install_error_handlers(app)  # what no tenant serves is a 404 in the API's error format
    names = sorted(node.settings.org for node in nodes)

    @app.get("/tenants")
    def tenants() -> dict[str, list[str]]:
        """The organisations this host serves (each under /t/<org>/api/v1)."""
        return {"tenants": names}

    for node in nodes:
        app.mount(f"{TENANT_PREFIX}/{node.settings.org}", create_app(node))
    return app


@stops_on_signals
def serve_tenants(tenants: Sequence[NodeSettings], *, host: str, port: int) -> None:
    """Serve several organisations from one process until a stop signal."""
    if len({settings.org for settings in tenants}) != len(tenants):
        raise ValueError("each tenant is a different organisation")
    # PRIVLEDGER_DATABASE_URL (how a node is put on PostgreSQL) names one database for every
    # tenant of the process: shared, it would hand one tenant's tokens and tasks to the others
    if len({settings.resolved_database_url for settings in tenants}) != len(tenants):
        raise ValueError(
            "each tenant needs a database of its own: PRIVLEDGER_DATABASE_URL names one "
            "database for all of them (leave it unset for a SQLite file in each home)"
        )
    configure_logging(tenants[0].log_level, json_lines=tenants[0].log_json)  # one log a process
    run_selftest()
    for settings in tenants:
        keep_files_private(settings.home)
    nodes, workers = [], []
    try:
        for settings in tenants:
            node = open_node(settings)
            nodes.append(node)
            publish_endpoint(node)
            workers.append(Worker(node))
        for worker in workers:
            worker.start()
        logger.info("hosting %s on %s:%d", ", ".join(n.settings.org for n in nodes), host, port)
        app = tenant_app(nodes)
        build_routes(app)
        tune_allocator()
        freeze_startup_objects()
        raise_open_files_limit()
        uvicorn.run(
            app,
            host=host,
            port=port,
            http=header_deadline(tenants[0].trusted_proxies),
            **server_logging(access_log=tenants[0].access_log),
            **proxy_options(tenants[0]),
            timeout_graceful_shutdown=5,
        )
    finally:
        for worker in workers:
            worker.stop()
        for node in nodes:
            node.close()
