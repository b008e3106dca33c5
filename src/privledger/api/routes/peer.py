"""Endpoints other organisations' nodes call: channel frames and task specs.

Frames need no token: each is sealed with AES-GCM under a key only the two nodes can derive, and the
receiving channel rejects anything forged, replayed or out of order. Specs are public to the
consortium; every worker checks a fetched spec against the hash on chain.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from privledger.api.deps import NodeDep, SessionDep, TaskId
from privledger.api.errors import ApiError, not_found
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


@router.get("/tasks/{task_id}/spec", response_class=Response)
def task_spec(task_id: TaskId, session: SessionDep) -> Response:
    """The canonical spec of a task this node submitted (its keccak256 is on chain)."""
    local = session.get(LocalTask, task_id)
    if local is None or local.spec_json is None:
        raise not_found(f"spec of task {task_id}")
    return Response(local.spec_json.encode(), media_type="application/json")
