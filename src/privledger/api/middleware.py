"""The node API's middleware, as plain ASGI classes: a request passes through them without being
wrapped in streams and tasks (Starlette's ``BaseHTTPMiddleware`` does that for every request and
every body, the peers' long-lived frame uploads included)."""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from privledger.api.errors import envelope_body, error_body
from privledger.api.ratelimit import ClientBuckets, RecentlyProven, client_key, retry_after
from privledger.node.audit import AuditWriter
from privledger.wire.numerals import is_ascii_digits

# the methods an anonymous call is counted under; any other is counted as OTHER, so that made-up
# methods cannot multiply the counts
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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


def authenticated_as(scope: Scope) -> str | None:
    """Who the call proved to be, as the route noted it (a token's user, a signing peer node),
    or None: nobody, so far."""
    actor = scope.get("state", {}).get("audit_actor")
    return None if actor is None else str(actor)


def route_template(scope: Scope, path: str) -> str | None:
    """The template of the route that took the call (``/api/v1/tasks/{task_id}``), or None if
    none did: the route's own template after the fixed prefix it is included or mounted under."""
    template = getattr(scope.get("route"), "path_format", None)
    if not isinstance(template, str):
        return None
    try:
        concrete = template.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return None
    if not path.endswith(concrete):
        return None
    return path[: len(path) - len(concrete)] + template


class LimitUncredentialedCalls:
    """At most ``rate`` calls a second (``burst`` at once) per client address (see
    :mod:`privledger.api.ratelimit`) for calls under ``limited`` (but not ``exempt``) that carry
    no credentials, and as many again for calls whose credentials (a bearer token, a node's
    signature) prove nobody; beyond that a 429 ``rate_limited`` with ``Retry-After``, before
    anything of the call is read.

    A call with credentials is let through while its address has not used up its calls with
    failed credentials, and counted against them only once it ran and proved nobody: so a
    credentialed caller is never held up, however many calls it makes. A bearer token that
    authenticated recently passes even an address whose failed calls are used up (someone at the
    same address failing to authenticate); a token's first call from such an address waits. Under
    ``enveloped`` the refusal is a BFIA envelope (the interop API's answers)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: float,
        burst: int,
        limited: tuple[str, ...],
        exempt: tuple[str, ...],
        enveloped: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.limited = limited
        self.exempt = exempt
        self.enveloped = enveloped
        self.anonymous = ClientBuckets(rate=rate, burst=burst)
        self.unproven = ClientBuckets(rate=rate, burst=burst)
        self.proven = RecentlyProven()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope) if scope["type"] == "http" else ""
        if not path.startswith(self.limited) or path.startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        client = client_key(scope["client"][0] if scope.get("client") else "")
        token = _header(scope, b"authorization")
        credentialed = bool(token or _header(scope, b"x-auth-sign"))
        buckets = self.unproven if credentialed else self.anonymous
        wait_s = buckets.wait_s(client)
        if wait_s > 0 and not (token and token in self.proven):
            await self._refuse(path, wait_s)(scope, receive, send)
            return
        if not credentialed:
            buckets.take(client)
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if authenticated_as(scope) is None:
                buckets.take(client)
                self.proven.forget(token)
            elif token:
                self.proven.remember(token)

    def _refuse(self, path: str, wait_s: float) -> JSONResponse:
        message = (
            "too many calls without credentials (or with credentials that fail) from this "
            f"address; retry in {retry_after(wait_s)} s"
        )
        body = (
            envelope_body(429, "rate_limited", message)
            if path.startswith(self.enveloped)
            else error_body("rate_limited", message)
        )
        return JSONResponse(body, 429, headers={"Retry-After": retry_after(wait_s)})


class LimitJsonBodies:
    """Refuse a request whose body is larger than ``limit`` bytes with a 413, except on the paths
    ``exempt`` (the peers' frame uploads, whose frames are limited one by one; dataset uploads,
    limited as they stream in).

    A declared ``Content-Length`` is checked before anything is read (the server holds the body to
    it); one that is not ASCII digits is a 400. A body without one (chunked transfer encoding) is
    read here, at most ``limit + 1`` bytes, before routing, authentication or parsing see any of
    it, and then replayed to the app: so no transfer encoding gets a larger body past the limit,
    or makes the node parse one.
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
            if not is_ascii_digits(declared):  # "²" passes str.isdigit(), and int() raises
                reason = "Content-Length is a whole number of bytes in ASCII digits"
                refusal = JSONResponse(error_body("invalid_content_length", reason), 400)
                await refusal(scope, receive, send)
                return
            digits = declared.lstrip("0") or "0"
            if len(digits) > len(str(self.limit)) or int(digits) > self.limit:
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
    caller and status (F18). The entry of a call whose caller authenticated is committed before
    the response starts, so no such caller ever holds an answer whose call is not in the log; a
    call that raised is recorded as a 500.

    Calls by nobody the node can name are counted instead (:meth:`AuditWriter.count_anonymous_call`)
    under their route's template -- or the audited prefix and ``*`` for a call no route took (an
    unknown path, or one refused before routing: 413, 429) -- never under the path the caller
    chose. The counts are written at the end of each interval and when the app shuts down."""

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
        if scope["type"] == "lifespan":
            await self.app(scope, self._flushing(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)  # before routing: a mount rewrites the scope's root path
        if not path.startswith(self.audited) or path.startswith(self.unaudited):
            await self.app(scope, receive, send)
            return
        # the routes note the caller in the request state (deps.token_user); one dict, shared
        scope.setdefault("state", {})
        started = False

        async def send_recorded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                await self._record(scope, path, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except Exception:
            if not started:
                await self._record(scope, path, 500)
            raise

    async def _record(self, scope: Scope, path: str, status: int) -> None:
        method: str = scope["method"]
        actor = authenticated_as(scope)
        if actor is not None:
            await self.writer.record_api_call(method, path, status, actor)
            return
        route = route_template(scope, path)
        if route is None:
            route = next(prefix for prefix in self.audited if path.startswith(prefix)) + "*"
        self.writer.count_anonymous_call(method if method in METHODS else "OTHER", route, status)

    def _flushing(self, receive: Receive) -> Receive:
        """``receive`` of the app's lifespan, writing the counts before the app shuts down."""

        async def receive_flushing() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await asyncio.wrap_future(self.writer.flush())
            return message

        return receive_flushing
