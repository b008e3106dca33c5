"""The interop API (F20): a management plane modelled on the BFIA privacy-computing
interconnection API, backed by the ledger, mounted on every node under ``/api/interop/v1``.

Modelled on "隐私计算互联互通管理层 API" v1.2.0 (the BFIA interconnection specification's
management layer, as published in SecretFlow's InterOp repository, ``互联互通API接口规范/
1.管理层接口``), of which we take:

- the common envelope: ``{"code": 0, "msg": ..., "data": {...}}``, ``code`` 0 for success; here
  an error's ``code`` is its HTTP status, which stays a 4xx/5xx (:mod:`.interop_common`);
- the common headers of node-to-node calls (``x-source-node-id``, ``x-target-node-id``,
  ``x-nonce``, ``x-timestamp``, ``x-auth-sign``, ``x-trace-id``), the signature checked against
  the organisation registry on chain instead of exchanged certificates;
- section 3, node partnership: ``node/contract/apply`` → ``confirm`` (APPROVED / REJECTED) →
  ``terminate``, ``node/contract/query`` (APPLIED, APPROVED, REJECTED, TERMINATED), ``node/query``
  and ``node/health`` (:mod:`.interop_nodes`);
- section 4, dataset authorisation: ``dataset/pub/list``, ``dataset/audit/apply`` (with
  ``auth_scope.COMPONENT``, ``time_limit``, ``times_limit``) → ``confirm`` (with a
  ``resource_permit`` whose token is the on-chain grant id) → ``terminate`` (revocation on chain),
  ``dataset/audit/query`` (:mod:`.interop_datasets`);
- from the control layer, job scheduling: ``schedule/job/create``, ``query``, ``result``
  (:mod:`.interop_jobs`).

Each east-west transition also has a node-to-node route under ``/interconn/...`` (the paths BFIA
defines between platforms), called by the node whose user acted. Differences from BFIA: ids are
minted by the node that receives the first request (``contract_id``, ``audit_id``: 32 hex
characters); organisation ids on chain are the ``inst_id`` and ``node_id``; ``time_limit`` is a
duration in seconds; projects, flows, components and models (sections 5-9) are not modelled.

The document is ``/api/interop/v1/openapi.json``, also published as
``/api/interop/v1/openapi/<version>.json`` with ``/api/interop/v1/openapi/changelog``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from privledger.api.routes import interop_datasets, interop_jobs, interop_nodes, versions
from privledger.api.routes.interop_common import (
    INTEROP_PREFIX,
    INTEROP_VERSION,
    install_envelope_errors,
)
from privledger.node.context import NodeContext

CHANGELOG: dict[str, list[str]] = {
    "1.0.0": [
        "node partnership (BFIA section 3), dataset authorisation (section 4) backed by grants "
        "on chain, job create/query/result; signed node-to-node calls under /interconn",
    ],
}

__all__ = ["INTEROP_PREFIX", "create_interop_app"]


def create_interop_app(node: NodeContext) -> FastAPI:
    """The interop API as its own application, to be mounted at :data:`INTEROP_PREFIX`."""
    app = FastAPIOffline(
        title="privledger interop API",
        version=INTEROP_VERSION,
        description=(
            "BFIA-style management plane of a privledger node: node partnership, dataset "
            "authorisation and jobs, each backed by the consortium's ledger. Every answer is "
            '`{"code", "msg", "data"}`; `code` is 0 on success, the HTTP status on error. '
            "Routes under `/interconn` are called by other nodes and authenticated by the "
            "`x-auth-sign` signature of the calling node's on-chain account; the others take an "
            "API token of this node."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.node = node
    app.state.changelog = CHANGELOG
    app.state.api_name = "interop"  # its earlier documents: privledger/api/openapi/interop-*
    install_envelope_errors(app)
    for module in (interop_nodes, interop_datasets):
        app.include_router(module.router)
        app.include_router(module.peer_router)
    interop_nodes.follow_reorganisations(node)
    app.include_router(interop_jobs.router)
    app.include_router(versions.router)
    return app
