"""``GET /metrics`` for Prometheus, and the task id on the log lines of requests about a task.

The metrics answer an operator token only (``Authorization: Bearer``, as every other route): a
node's peer endpoint faces its partners, and its numbers (how many tasks of which kind, how they
failed) are the organisation's business. Outside ``/api/v1``: a scrape is neither audited nor part
of the API's schema, but calls without a valid token are throttled like the API's.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from privledger.api.deps import NodeDep, require
from privledger.evm.contracts import Role
from privledger.node.metrics import METRICS_PATH, metrics_of
from privledger.observability.logs import task_context

# /tasks/41, /tasks/41/result, /peer/tasks/41/spec, /approvals/41/0x.., /services/x/calls/41/proof
# ([0-9], not \d: \d takes other scripts' digits, which int() reads as ASCII ones)
_TASK_IN_PATH = re.compile(r"/(?:tasks|approvals|calls)/([0-9]{1,18})(?:/|$)")

router = APIRouter(include_in_schema=False)


@router.get(METRICS_PATH, dependencies=[Depends(require(Role.OPERATOR))])
def metrics(node: NodeDep) -> Response:
    """The node's metrics in Prometheus' text format (docs/operations.md lists them)."""
    return Response(generate_latest(metrics_of(node).registry), media_type=CONTENT_TYPE_LATEST)


class TaskLogContext:
    """Every line logged while a request whose path names a task is served (uvicorn's access
    line included) carries ``task=<id>``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _TASK_IN_PATH.search(scope["path"]) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        with task_context(int(found.group(1))):
            await self.app(scope, receive, send)
