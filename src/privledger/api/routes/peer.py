"""Endpoints other organisations' nodes call: channel frames and task specs.

Frames need no token: each is sealed with AES-GCM under a key only the two nodes can derive, and the
receiving channel rejects anything forged, replayed or out of order. A spec is given only to the
node of another participant of its task, which signs its request; every worker checks a fetched
spec against the hash on chain.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from privledger.api.deps import NodeDep, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
from privledger.api.middleware import route_path
from privledger.node.peer_auth import (
    HEADERS,
    PEER_SCHEME,
    PeerAuthError,
    peer_actor,
    verify_signed,
)
from privledger.node.transport import FrameTooLarge, MailboxFull, receive_stream
from privledger.store.models import LocalTask

router = APIRouter(prefix="/peer", tags=["peer"])


class FramesAccepted(BaseModel):
    frames: int


@router.post(
    "/frames",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "Sealed channel frames, each as a 4-byte big-endian length and the "
            "frame; usually one long-lived chunked upload per task and direction.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def deliver_frames(request: Request, node: NodeDep) -> FramesAccepted:
    """Accept a stream of sealed channel frames for running tasks; answers once the stream ends
    with the number of frames queued."""
    settings = node.settings
    try:
        count = await receive_stream(
            request.stream(),
            node.mailbox,
            max_frame_bytes=settings.max_frame_bytes,
            full_wait_s=settings.channel_timeout_s,
        )
    except ClientDisconnect as exc:  # the sending node stopped mid-stream (e.g. it died)
        raise ApiError(400, "stream_broken", "the sender disconnected inside the stream") from exc
    except MailboxFull as exc:
        raise ApiError(429, "mailbox_full", str(exc)) from exc
    except FrameTooLarge as exc:
        raise ApiError(413, "too_large", str(exc)) from exc
    except ValueError as exc:
        raise ApiError(400, "malformed_frame", str(exc)) from exc
    return FramesAccepted(frames=count)


@router.get(
    "/tasks/{task_id}/spec",
    response_class=Response,
    openapi_extra={
        "parameters": [
            {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
            for name in HEADERS
        ]
    },
)
def task_spec(task_id: TaskId, request: Request, node: NodeDep, session: SessionDep) -> Response:
    """The canonical spec of a task this node submitted (its keccak256 is on chain), for the
    node of another participant of the task only: the call is signed by that node's account
    (:mod:`privledger.node.peer_auth`, scheme ``privledger-peer-v1``). The spec names datasets,
    columns and organisations: nothing for anyone outside the task."""
    try:
        caller = verify_signed(
            node.ledger.orgs,
            node.org_id,
            scheme=PEER_SCHEME,
            path=route_path(request.scope),
            headers=request.headers,
            body=b"",
            any_target=True,
        )
    except PeerAuthError as exc:
        code = "unauthorized" if exc.status == 401 else "forbidden"
        raise ApiError(exc.status, code, str(exc)) from exc
    request.state.audit_actor = peer_actor(caller)
    local = session.get(LocalTask, task_id)
    if local is None or local.spec_json is None:
        raise not_found(f"spec of task {task_id}")
    if caller not in node.ledger.tasks.get_task(task_id).participants:
        raise ApiError(403, "forbidden", f"organisation {caller} takes no part in task {task_id}")
    return Response(local.spec_json.encode(), media_type="application/json")
