"""Onboarding portal pages (F16): an applicant applies and tracks an application, the consortium
admin reviews, approves (custodial) and rejects — in the browser, over the REST API of
:mod:`privledger.api.routes.onboarding` (the pages hold no state and render nothing of the
applications server-side; the script writes every value as text, never as HTML).

``/portal`` is the applicant's page, ``/portal/review`` the consortium admin's (who pastes a
``consortium_admin`` token, kept in the tab's session storage only); below ``/t/<org>`` on a
tenant host."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).with_name("static")
# the pages load only their own script and style sheet and call only this node's API
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/portal", include_in_schema=False)


def static_page(request: Request, path: Path) -> HTMLResponse:
    """The page at ``path`` with ``{{root}}`` replaced by where the node's app is mounted (the
    ASGI root path: ``/t/<org>`` on a tenant host, empty for a node of its own), so its links,
    assets and the API its script calls are this node's wherever it is served."""
    root = escape(str(request.scope.get("root_path", "")).rstrip("/"))
    return HTMLResponse(path.read_text().replace("{{root}}", root), headers=HEADERS)


@router.get("")
def applicant_page(request: Request) -> HTMLResponse:
    return static_page(request, STATIC / "apply.html")


@router.get("/review")
def review_page(request: Request) -> HTMLResponse:
    return static_page(request, STATIC / "review.html")


@router.get("/static/portal.js")
def script() -> FileResponse:
    return FileResponse(STATIC / "portal.js", media_type="text/javascript", headers=HEADERS)


@router.get("/static/portal.css")
def style() -> FileResponse:
    return FileResponse(STATIC / "portal.css", media_type="text/css", headers=HEADERS)


__all__ = ["router"]
