"""What every explorer page shares: templates and filters, the error handling route class, the
session dependencies and the paging helpers.

Refusals and bad input become 401/403/400/404 JSON under /explorer/api, and elsewhere a login
redirect (401) or an error page; every explorer response carries the security headers.

The explorer lives at ``/explorer`` of its node's app, which a tenant host mounts under
``/t/<org>``: every link, redirect, form action, script URL and the session cookie's path start
at :func:`explorer_root`, so the same pages work at both places and one tenant's pages never
point into another's.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from privledger.api.deps import NodeDep
from privledger.api.errors import error_body
from privledger.evm.contracts import Role
from privledger.node.context import NodeContext
from privledger.wire.numerals import ascii_number

from .auth import SESSION_COOKIE, AuthFailure, ViewerSession, explorer_auth
from .directory import Directory
from .verify import VerifyInputError

HERE = Path(__file__).parent
PREFIX = "/explorer"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class PageNotFound(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(Exception):
    """A malformed id, hash, cursor or page number: a 400 with ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _utc(value: int) -> str:
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _eth(wei: int | str) -> str:
    ether = f"{int(wei) / 10**18:.6f}".rstrip("0").rstrip(".")
    return f"{ether} ETH"


def _short(value: object) -> str:
    text = str(value)
    return f"{text[:10]}…{text[-6:]}" if text.startswith("0x") and len(text) > 20 else text


def _roles(value: int) -> str:
    names = [role.name.lower().replace("_", " ") for role in Role if role & value and role.name]
    return ", ".join(names) or "none"


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters.update(utc=_utc, eth=_eth, short=_short, roles=_roles)
templates = Jinja2Templates(env=_env)


def explorer_root(request: Request) -> str:
    """The explorer's URL path on this host: ``/explorer`` below the app's mount (the ASGI
    ``root_path``: ``/t/<org>`` for a tenant, empty for a node of its own)."""
    return str(request.scope.get("root_path", "")).rstrip("/") + PREFIX


def is_json(request: Request) -> bool:
    return request.url.path.startswith(f"{explorer_root(request)}/api/")


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    viewer: ViewerSession | None = None,
    status_code: int = 200,
) -> Response:
    node: NodeContext = request.app.state.node
    with Session(node.engine) as session:
        node_org = Directory.load(session).org_name(node.org_id)
    base = {
        "node_org": node_org,
        "node_org_id": node.org_id,
        "viewer": viewer,
        "is_auditor": viewer is not None and bool(viewer.roles & Role.AUDITOR),
        "path": request.url.path,
        "root": explorer_root(request),
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _error(request: Request, status: int, code: str, title: str, message: str) -> Response:
    if is_json(request):
        return JSONResponse(error_body(code, message), status)
    return page(request, "error.html", {"title": title, "message": message}, status_code=status)


class ExplorerRoute(APIRoute):
    """Turns refusals and bad input into clear 4xx answers and adds the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def explorer_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except AuthFailure as exc:
                if exc.status == 401 and not is_json(request):
                    login = f"{explorer_root(request)}/login"
                    response = RedirectResponse(login, status_code=303)
                else:
                    response = await run_in_threadpool(
                        _error, request, exc.status, exc.code, "Forbidden", exc.message
                    )
            except PageNotFound as exc:
                response = await run_in_threadpool(
                    _error, request, 404, "not_found", "Not found", exc.message
                )
            except BadInput as exc:
                response = await run_in_threadpool(
                    _error, request, 400, "invalid_request", "Bad request", exc.message
                )
            except VerifyInputError as exc:
                response = JSONResponse(error_body(exc.code, exc.message), exc.status)
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return explorer_handler


def current_viewer(request: Request, node: NodeDep) -> ViewerSession:
    """The session's holder, still an auditor or operator on chain."""
    return explorer_auth(request).session(node, request.cookies.get(SESSION_COOKIE))


def current_auditor(viewer: Annotated[ViewerSession, Depends(current_viewer)]) -> ViewerSession:
    if not viewer.roles & Role.AUDITOR:
        raise AuthFailure(
            403, "forbidden", f"{viewer.address} does not hold the auditor role on chain"
        )
    return viewer


Viewer = Annotated[ViewerSession, Depends(current_viewer)]
Auditor = Annotated[ViewerSession, Depends(current_auditor)]


# --- paging -----------------------------------------------------------------------------------
MAX_PAGE = 1_000_000


def page_number(text: str) -> int:
    """A 1-based page number from a query string ("" is page 1)."""
    text = text.strip()
    if not text:
        return 1
    number = ascii_number(text)
    if number is None or not 1 <= number <= MAX_PAGE:
        raise BadInput(f"page {text!r} is not a page number (1 to {MAX_PAGE})")
    return number


def check_page(page_no: int, total: int, size: int) -> int:
    """The page count; a page past the last (other than an empty first page) is a 404."""
    pages = max(1, -(-total // size))
    if page_no > pages:
        raise PageNotFound(f"page {page_no} does not exist: there are {pages}")
    return pages


def paged(page_no: int, rows: Sequence[Any], total: int, size: int) -> dict[str, Any]:
    """One page of a listing as its page and JSON twin show it (404 past the last page)."""
    pages = check_page(page_no, total, size)
    return {"rows": rows, "total": total, "page_no": page_no, "pages": pages}


def whole_number(text: str, what: str) -> int:
    text = text.strip()
    number = ascii_number(text)
    if number is None:
        raise BadInput(f"{text!r} is not a {what}: {what}s are whole numbers")
    return number


def hex32(text: str, what: str) -> str:
    """``text`` as a canonical 0x-prefixed lower-case 32-byte hex string."""
    value = text.strip().lower()
    digits = value[2:] if value.startswith("0x") else value
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise BadInput(f"{text[:80]!r} is not a {what}: 0x followed by 64 hex digits")
    return "0x" + digits
