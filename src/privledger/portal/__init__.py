"""Onboarding portal pages (F16): an applicant applies and tracks an application, the consortium
admin reviews, approves (custodial) and rejects — in the browser, over the REST API of
:mod:`privledger.api.routes.onboarding` (the pages hold no state and render nothing of the
applications server-side; the script writes every value as text, never as HTML).

``/portal`` is the applicant's page, ``/portal/review`` the consortium admin's (who pastes a
``consortium_admin`` token, kept in the tab's session storage only)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

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


@router.get("")
def applicant_page() -> FileResponse:
    return FileResponse(STATIC / "apply.html", headers=HEADERS)


@router.get("/review")
def review_page() -> FileResponse:
    return FileResponse(STATIC / "review.html", headers=HEADERS)


@router.get("/static/portal.js")
def script() -> FileResponse:
    return FileResponse(STATIC / "portal.js", media_type="text/javascript", headers=HEADERS)


@router.get("/static/portal.css")
def style() -> FileResponse:
    return FileResponse(STATIC / "portal.css", media_type="text/css", headers=HEADERS)


__all__ = ["router"]
