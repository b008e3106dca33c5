"""Endpoints other organisations' nodes call: channel frames, task specs, derived datasets.

A frame stream needs no token: the sending node signs the POST that opens it for its organisation
(scheme ``privledger-frames-v1``), and every frame in it must name that organisation as its sender,
so no one else can queue a frame here; each frame is sealed with AES-GCM under a key only the two
nodes can derive, and the receiving channel rejects anything forged, replayed or out of order. A
spec is given only to the node of another participant of its task, which signs its request;
every worker checks a fetched spec against the hash on chain. A task's requester may ask for the
derived dataset of this node's aligned rows when the owner's grant consents
(``privledger.node.derived``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from privledger.api.deps import NodeDep, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
from privledger.api.middleware import route_path
from privledger.evm.errors import ChainRevert
from privledger.node.derived import DeriveError, NotConsented, NotTakenPart, derive_for_grantee
from privledger.node.peer_auth import (
    FRAMES_SCHEME,
    HEADERS,
    PEER_SCHEME,
    PeerAuthError,
    peer_actor,
    verify_signed,
)
from privledger.node.transport import ForeignFrame, FrameTooLarge, MailboxFull, receive_stream
from privledger.store.models import LocalTask
from privledger.wire.assets import DerivedOut

router = APIRouter(prefix="/peer", tags=["peer"])
SIGNED = {  # the headers of a call signed by another organisation's node
    "parameters": [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
        for name in HEADERS
    ]
}


class FramesAccepted(BaseModel):
    frames: int


@router.post(
    "/frames",
    openapi_extra={
        **SIGNED,
        "requestBody": {
            "required": True,
            "description": "Sealed channel frames, each as a 4-byte big-endian length and the "
            "frame; usually one long-lived chunked upload per task and direction.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
    },
)
async def deliver_frames(request: Request, node: NodeDep) -> FramesAccepted:
    """Accept a stream of sealed channel frames for running tasks from another organisation's
    node, which signs the call (:mod:`privledger.node.peer_auth`, scheme
    ``privledger-frames-v1``, addressed to this organisation): every frame must name the signing
    organisation as its sender (403 otherwise). Answers once the stream ends with the number of
    frames queued."""
    settings = node.settings
    # the signer's role is read from the chain: not on the event loop the streams share
    sender = await run_in_threadpool(
        _signed_caller, request, node, scheme=FRAMES_SCHEME, any_target=False
    )
    try:
        count = await receive_stream(
            request.stream(),
            node.mailbox,
            sender_org=sender,
            max_frame_bytes=settings.max_frame_bytes,
            full_wait_s=settings.channel_timeout_s,
        )
    except ClientDisconnect as exc:  # the sending node stopped mid-stream (e.g. it died)
        raise ApiError(400, "stream_broken", "the sender disconnected inside the stream") from exc
    except MailboxFull as exc:
        raise ApiError(429, "mailbox_full", str(exc)) from exc
    except FrameTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from exc
    except ForeignFrame as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    except ValueError as exc:
        raise ApiError(400, "malformed_frame", str(exc)) from exc
    return FramesAccepted(frames=count)


@router.get(
    "/tasks/{task_id}/spec",
    response_class=Response,
    openapi_extra=SIGNED,
)
def task_spec(task_id: TaskId, request: Request, node: NodeDep, session: SessionDep) -> Response:
    """The canonical spec of a task this node submitted (its keccak256 is on chain), for the
    node of another participant of the task only: the call is signed by that node's account
    (:mod:`privledger.node.peer_auth`, scheme ``privledger-peer-v1``). The spec names datasets,
    columns and organisations: nothing for anyone outside the task."""
    caller = _signed_caller(request, node, scheme=PEER_SCHEME, any_target=True)
    local = session.get(LocalTask, task_id)
    if local is None or local.spec_json is None:
        raise not_found(f"spec of task {task_id}")
    if caller not in node.ledger.tasks.get_task(task_id).participants:
        raise ApiError(403, "forbidden", f"organisation {caller} takes no part in task {task_id}")
    request.state.audit_actor = peer_actor(caller)
    return Response(local.spec_json.encode(), media_type="application/json")


@router.post(
    "/tasks/{task_id}/derived",
    response_model=DerivedOut,
    openapi_extra=SIGNED,
)
def derived_for_requester(task_id: TaskId, request: Request, node: NodeDep) -> DerivedOut:
    """For the requester of a completed set task only (a call signed by its node, addressed to
    this organisation): this node's aligned rows registered as a derived dataset and granted to
    the requester, when the grant the task used on this node's input allows it (its terms'
    ``derive``). Asking again answers the same dataset and grant (docs/pipelines.md)."""
    caller = _signed_caller(request, node, scheme=PEER_SCHEME, any_target=False)
    try:
        derived = derive_for_grantee(node, task_id=task_id, caller_org=caller)
    except NotTakenPart as exc:
        raise not_found(str(exc)) from exc
    except NotConsented as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
    except (DeriveError, ChainRevert) as exc:
        raise ApiError(409, "not_derivable", str(exc)) from exc
    request.state.audit_actor = peer_actor(caller)
    return derived


def _signed_caller(request: Request, node: NodeDep, *, scheme: str, any_target: bool) -> int:
    """The organisation whose node signed this call (:mod:`privledger.node.peer_auth`). The
    route names it in the audit log only once it answers the call: a peer's reads of tasks it has
    no part in are counted like anonymous calls, one entry per route and interval, so that no
    member can grow another's audit log by a call each."""
    try:
        caller = verify_signed(
            node.ledger.orgs,
            node.org_id,
            scheme=scheme,
            path=route_path(request.scope),
            headers=request.headers,
            body=b"",
            any_target=any_target,
        )
    except PeerAuthError as exc:
        code = "unauthorized" if exc.status == 401 else "forbidden"
        raise ApiError(exc.status, code, str(exc)) from exc
    return caller
