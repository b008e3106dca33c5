"""Endpoints other organisations' nodes call: channel frames and task specs.

Frames need no token: each is sealed with AES-GCM under a key only the two nodes can derive, and the
receiving channel rejects anything forged, replayed or out of order. Specs are public to the
consortium; every worker checks a fetched spec against the hash on chain.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from privledger.api.deps import NodeDep, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
from privledger.node.transport import MailboxFull
from privledger.store.models import LocalTask

router = APIRouter(prefix="/peer", tags=["peer"])


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"a frame is at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"a frame is at most {limit} bytes")
    return bytes(body)


@router.post(
    "/frames",
    status_code=202,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def deliver_frame(request: Request, node: NodeDep) -> Response:
    """Accept one sealed channel frame for a running task."""
    frame = await _read_limited(request, node.settings.max_frame_bytes)
    try:
        node.mailbox.deliver(frame)
    except MailboxFull as exc:
        raise ApiError(429, "mailbox_full", str(exc)) from exc
    except ValueError as exc:
        raise ApiError(400, "malformed_frame", str(exc)) from exc
    return Response(status_code=202)


@router.get("/tasks/{task_id}/spec", response_class=Response)
def task_spec(task_id: TaskId, session: SessionDep) -> Response:
    """The canonical spec of a task this node submitted (its keccak256 is on chain)."""
    local = session.get(LocalTask, task_id)
    if local is None or local.spec_json is None:
        raise not_found(f"spec of task {task_id}")
    return Response(local.spec_json.encode(), media_type="application/json")
