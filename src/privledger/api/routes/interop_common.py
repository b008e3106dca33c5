"""Shared pieces of the interop API: BFIA envelopes, signed node-to-node calls, anchoring.

Envelope: every answer is ``{"code": 0, "msg": "ok", "data": {...}}``; an error keeps its 4xx/5xx
HTTP status and answers ``{"code": <that status>, "msg": <what went wrong>, "data": {"error":
<machine-readable code>}}``.

Node-to-node calls (``/interconn/...``) carry BFIA's common headers ``x-source-node-id``,
``x-target-node-id`` (organisation ids on chain), ``x-nonce``, ``x-timestamp`` (milliseconds) and
``x-auth-sign``: an EIP-191 signature by the calling node's account over
``privledger-interop-v1\\n<path>\\n<source>\\n<target>\\n<nonce>\\n<timestamp>\\n<sha256(body)>``.
The receiver accepts a call only if the signer holds, on chain now, the operator role of the
active source organisation (a node's account is its organisation's operator), the target is its
own organisation, the timestamp is within five minutes and the nonce is new: the chain stands in
for the certificates BFIA exchanges when nodes sign a contract.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from privledger.api.errors import ApiError, install_error_handlers
from privledger.evm.contracts import OrgStatus, Role
from privledger.evm.hashing import keccak256
from privledger.evm.merkle import MerkleTree
from privledger.node.context import NodeContext

INTEROP_PREFIX = "/api/interop/v1"
INTEROP_VERSION = "1.0.0"
SYSTEM = "privledger"
CLOCK_SKEW_MS = 300_000
Status = Literal["APPLIED", "APPROVED", "REJECTED", "TERMINATED"]
Decision = Literal["APPROVED", "REJECTED"]

DataT = TypeVar("DataT")
PayloadT = TypeVar("PayloadT", bound=BaseModel)


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
            {
                "code": response.status_code,
                "msg": error["message"],
                "data": {"error": error["code"]},
            },
            status_code=response.status_code,
            headers=headers,
        )

    return wrapped


def _message(path: str, source: int, target: int, nonce: str, timestamp: int, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"privledger-interop-v1\n{path}\n{source}\n{target}\n{nonce}\n{timestamp}\n{digest}"


class NonceCache:
    """Nonces seen within the accepted clock window; a repeat is a replay."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def fresh(self, nonce: str) -> bool:
        now = time.monotonic()
        with self._lock:
            for old in [n for n, expiry in self._seen.items() if expiry < now]:
                del self._seen[old]
            if nonce in self._seen:
                return False
            self._seen[nonce] = now + 2 * CLOCK_SKEW_MS / 1000
            return True


NONCES = NonceCache()


def verify_peer(node: NodeContext, request: Request, body: bytes) -> int:
    """The calling organisation of a signed node-to-node call, or a 401/403."""
    headers = request.headers
    try:
        source = int(headers["x-source-node-id"])
        target = int(headers["x-target-node-id"])
        timestamp = int(headers["x-timestamp"])
        nonce = headers["x-nonce"]
        signature = bytes.fromhex(headers["x-auth-sign"].removeprefix("0x"))
    except (KeyError, ValueError) as exc:
        raise ApiError(
            401, "unauthorized", f"a node-to-node call needs BFIA headers: {exc}"
        ) from exc
    if target != node.org_id:
        raise ApiError(403, "forbidden", f"this node is organisation {node.org_id}, not {target}")
    if abs(time.time() * 1000 - timestamp) > CLOCK_SKEW_MS:
        raise ApiError(401, "unauthorized", "x-timestamp is outside the accepted window")
    if not 16 <= len(nonce) <= 128:
        raise ApiError(401, "unauthorized", "x-nonce must be 16 to 128 characters")
    message = _message(request.url.path, source, target, nonce, timestamp, body)
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # eth-account raises several types for malformed signatures
        raise ApiError(401, "unauthorized", f"x-auth-sign does not verify: {exc}") from exc
    if source <= 0 or not node.ledger.orgs.has_org_role(source, signer, Role.OPERATOR):
        raise ApiError(
            403, "forbidden", f"{signer} is no operator of an active organisation {source}"
        )
    if not NONCES.fresh(nonce):
        raise ApiError(401, "unauthorized", "x-nonce was used before (replay)")
    return source


def call_peer(node: NodeContext, org_id: int, path: str, payload: BaseModel) -> dict[str, Any]:
    """POST ``payload`` to ``path`` of organisation ``org_id``'s interop API, signed by this node;
    the answer's ``data``, or an ApiError carrying the peer's refusal."""
    org = node.ledger.orgs.get_org(org_id)
    if org.status is not OrgStatus.ACTIVE or not org.endpoint:
        raise ApiError(409, "peer_unavailable", f"organisation {org_id} has no active node")
    full_path = f"{INTEROP_PREFIX}{path}"
    body = payload.model_dump_json().encode()
    nonce, timestamp = secrets.token_hex(16), int(time.time() * 1000)
    message = _message(full_path, node.org_id, org_id, nonce, timestamp, body)
    signature = node.account.sign_message(encode_defunct(text=message)).signature
    headers = {
        "content-type": "application/json",
        "x-source-node-id": str(node.org_id),
        "x-target-node-id": str(org_id),
        "x-nonce": nonce,
        "x-timestamp": str(timestamp),
        "x-auth-sign": "0x" + bytes(signature).hex(),
        "x-trace-id": nonce,
    }
    try:
        response = node.http.post(
            org.endpoint.rstrip("/") + full_path, content=body, headers=headers
        )
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
