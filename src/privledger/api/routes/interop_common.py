"""Shared pieces of the interop API: BFIA envelopes, signed node-to-node calls, anchoring.

Envelope: every answer is ``{"code": 0, "msg": "ok", "data": {...}}``; an error keeps its 4xx/5xx
HTTP status and answers ``{"code": <that status>, "msg": <what went wrong>, "data": {"error":
<machine-readable code>}}``.

Node-to-node calls (``/interconn/...``) carry BFIA's common headers ``x-source-node-id``,
``x-target-node-id`` (organisation ids on chain), ``x-nonce``, ``x-timestamp`` (milliseconds) and
``x-auth-sign``, signed and checked as :mod:`privledger.node.peer_auth` says, under the scheme
``privledger-interop-v1``: the chain stands in for the certificates BFIA exchanges when nodes sign
a contract.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlmodel import SQLModel

from privledger.api.errors import ApiError, envelope_body, install_error_handlers
from privledger.api.middleware import route_path
from privledger.evm.contracts import OrgStatus
from privledger.evm.errors import ChainError
from privledger.evm.hashing import keccak256
from privledger.evm.indexer import Forgotten
from privledger.evm.merkle import MerkleTree
from privledger.node.context import NodeContext
from privledger.node.endpoints import usable_endpoint
from privledger.node.logbook import anchor_vanished_again
from privledger.node.peer_auth import PeerAuthError, peer_actor, signed_headers, verify_signed

INTEROP_PREFIX = "/api/interop/v1"
INTEROP_VERSION = "1.0.0"
SYSTEM = "privledger"
INTEROP_SCHEME = "privledger-interop-v1"
Status = Literal["APPLIED", "APPROVED", "REJECTED", "TERMINATED"]
Decision = Literal["APPROVED", "REJECTED"]

DataT = TypeVar("DataT")
PayloadT = TypeVar("PayloadT", bound=BaseModel)

logger = logging.getLogger(__name__)


class Wire(BaseModel):
    """Interop bodies: snake_case as in the BFIA specification, unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class Envelope(BaseModel, Generic[DataT]):
    code: int = 0
    msg: str = "ok"
    data: DataT


class Empty(Wire):
    pass


def ok(data: DataT) -> Envelope[DataT]:
    return Envelope[DataT](data=data)


def install_envelope_errors(app: FastAPI) -> None:
    """The node API's error mapping, each answer re-wrapped as a BFIA envelope."""
    install_error_handlers(app)
    for exc_class, handler in list(app.exception_handlers.items()):
        app.exception_handlers[exc_class] = _enveloped(handler)


def _enveloped(
    handler: Callable[[Request, Any], Response | Awaitable[Response]],
) -> Callable[[Request, Any], Awaitable[Response]]:
    async def wrapped(request: Request, exc: Any) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        error = json.loads(bytes(response.body))["error"]
        headers = {k: v for k, v in response.headers.items() if k.lower() == "www-authenticate"}
        return JSONResponse(
            envelope_body(response.status_code, error["code"], error["message"]),
            status_code=response.status_code,
            headers=headers,
        )

    return wrapped


def verify_peer(node: NodeContext, request: Request, body: bytes) -> int:
    """The calling organisation of a signed node-to-node call, or a 401/403."""
    try:
        caller = verify_signed(
            node.ledger.orgs,
            node.org_id,
            scheme=INTEROP_SCHEME,
            # as signed: the interop app's own path under its prefix, without a tenant's /t/<org>
            path=INTEROP_PREFIX + route_path(request.scope),
            headers=request.headers,
            body=body,
        )
    except PeerAuthError as exc:
        code = "unauthorized" if exc.status == 401 else "forbidden"
        raise ApiError(exc.status, code, str(exc)) from exc
    request.state.audit_actor = peer_actor(caller)
    return caller


def call_peer(node: NodeContext, org_id: int, path: str, payload: BaseModel) -> dict[str, Any]:
    """POST ``payload`` to ``path`` of organisation ``org_id``'s interop API, signed by this node;
    the answer's ``data``, or an ApiError carrying the peer's refusal."""
    org = node.ledger.orgs.get_org(org_id)
    endpoint = usable_endpoint(org.endpoint)
    if org.status is not OrgStatus.ACTIVE or not endpoint:
        raise ApiError(409, "peer_unavailable", f"organisation {org_id} has no active node")
    full_path = f"{INTEROP_PREFIX}{path}"
    body = payload.model_dump_json().encode()
    signed = signed_headers(node.account, INTEROP_SCHEME, full_path, node.org_id, org_id, body)
    headers = {"content-type": "application/json", **signed, "x-trace-id": signed["x-nonce"]}
    try:
        response = node.http.post(endpoint + full_path, content=body, headers=headers)
        answer = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ApiError(502, "peer_unreachable", f"organisation {org_id}'s node: {exc}") from exc
    if response.status_code >= 400 or answer.get("code") != 0:
        status = response.status_code if response.status_code >= 400 else 502
        raise ApiError(status, "peer_refused", f"organisation {org_id}: {answer.get('msg')}")
    data: dict[str, Any] = answer.get("data") or {}
    return data


def record_digest(record: dict[str, Any]) -> bytes:
    """keccak256 of a record's canonical JSON (sorted keys, no spaces)."""
    return keccak256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())


def anchor_record(node: NodeContext, record: dict[str, Any], label: str) -> tuple[int, str]:
    """Anchor one record's digest on chain as a one-leaf batch (``BatchAnchor.verify(batchId,
    digest, [])`` proves it); the batch id and transaction hash."""
    tree = MerkleTree([record_digest(record)])
    batch_id, receipt = node.ledger.anchors.anchor_batch(
        tree.root, 1, label.encode().ljust(32, b"\0")[:32]
    )
    return batch_id, receipt["transactionHash"].to_0x_hex()


def anchor_again_after_reorganisations(
    node: NodeContext,
    table: type[SQLModel],
    record_of: Callable[[Any], dict[str, Any]],
    label: str,
) -> None:
    """Have the records of ``table`` that :func:`anchor_record` anchored (in ``anchor_batch_id``
    and ``anchor_tx``; ``record_of`` gives a row's anchored record) anchored again when a
    reorganisation takes their batch back, as the node's log batches are: whenever the index
    forgets blocks, in the process whose index follows the chain's rewinds
    (:func:`privledger.node.logbook.anchor_vanished_again`). Each node anchors its own copy of a
    record again, so the two parties' copies of one decision may then name two batches of one
    digest, each on chain."""

    def anchor(row: Any) -> tuple[int, str]:
        return anchor_record(node, record_of(row), label)

    def rewound(forgotten: Forgotten) -> None:
        try:
            anchor_vanished_again(node, table, forgotten.transactions, anchor)
        except ChainError as exc:  # the index's rewind stands; the next one tries again
            logger.warning("%s records not anchored again: %s", table.__name__, exc)

    node.indexer.on_rewind(rewound)


def signed_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI extra documenting a node-to-node route's JSON body (read raw: it is signed)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in (
                "x-source-node-id",
                "x-target-node-id",
                "x-nonce",
                "x-timestamp",
                "x-auth-sign",
            )
        ],
    }


async def signed_payload(
    request: Request, node: NodeContext, model: type[PayloadT]
) -> tuple[int, PayloadT]:
    """The calling organisation and the parsed body of a signed node-to-node call."""
    body = await request.body()
    source = await run_in_threadpool(verify_peer, node, request, body)
    try:
        return source, model.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ApiError(400, "invalid_request", problems) from exc
