"""The node API's middleware, as plain ASGI classes: a request passes through them without being
wrapped in streams and tasks (Starlette's ``BaseHTTPMiddleware`` does that for every request and
every body, the peers' long-lived frame uploads included)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from privledger.api.errors import error_body
from privledger.node.audit import AuditWriter


def route_path(scope: Scope) -> str:
    """The request's path inside this app (without the ``/t/<org>`` mount of a tenant host)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


class LimitJsonBodies:
    """Refuse a request whose body is larger than ``limit`` bytes with a 413, except on the paths
    ``exempt`` (the peers' frame uploads, whose frames are limited one by one; dataset uploads,
    limited as they stream in).

    A declared ``Content-Length`` is checked before anything is read (the server holds the body to
    it). A body without one (chunked transfer encoding) is read here, at most ``limit + 1`` bytes,
    before routing, authentication or parsing see any of it, and then replayed to the app: so no
    transfer encoding gets a larger body past the limit, or makes the node parse one.
    """

    def __init__(self, app: ASGIApp, *, limit: int, exempt: tuple[str, ...]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the caller went away before its body was complete: nobody to answer
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body, only the disconnect notice is left
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"a request body is at most {self.limit} bytes"
        await JSONResponse(error_body("too_large", message), 413)(scope, receive, send)


class AuditCalls:
    """Record every call under ``audited`` (but not under ``unaudited``) in the audit log with its
    caller and status (F18). The entry is committed before the response starts, so no caller ever
    holds an answer whose call is not in the log; a call that raised is recorded as a 500."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        writer: AuditWriter,
        audited: tuple[str, ...],
        unaudited: tuple[str, ...],
    ) -> None:
        self.app = app
        self.writer = writer
        self.audited = audited
        self.unaudited = unaudited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)  # before routing: a mount rewrites the scope's root path
        if not path.startswith(self.audited) or path.startswith(self.unaudited):
            await self.app(scope, receive, send)
            return
        # the routes note the caller in the request state (deps.token_user); one dict, shared
        state: dict[str, Any] = scope.setdefault("state", {})
        started = False

        async def send_recorded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                await self._record(scope["method"], path, int(message["status"]), state)
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception:
            if not started:
                await self._record(scope["method"], path, 500, state)
            raise

    async def _record(self, method: str, path: str, status: int, state: dict[str, Any]) -> None:
        actor = str(state.get("audit_actor", "anonymous"))
        await self.writer.record_api_call(method, path, status, actor)
