"""The workflow console (F15): what waits for an organisation's decision, decided in the browser.

``/console`` is one static page over this node's REST API: the user pastes an API token (kept in
the tab's session storage only); the page lists the inbox (``GET /api/v1/workflow/inbox``: task
inputs waiting for the owner's approval, project invitations) and the outbox, and the buttons
call the same routes a script would -- ``POST /api/v1/approvals/{task}/{dataset}`` signs the
on-chain approval or rejection with the data owner's key, ``POST /api/v1/projects/{id}/invitation``
accepts or declines. Beneath a task waiting for a data owner, the page shows
``GET /api/v1/approvals/{task}/{dataset}``: what the task does with the dataset and, term by term,
the owner's terms it keeps or breaks; a task whose spec the ledger does not vouch for can only be
rejected. The page renders nothing server-side but where it is mounted (``/t/<org>`` on a tenant
host); the script writes every value as text.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from privledger.portal import HEADERS, static_page

STATIC = Path(__file__).with_name("static")

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
def console_page(request: Request) -> HTMLResponse:
    return static_page(request, STATIC / "console.html")


@router.get("/static/console.js")
def script() -> FileResponse:
    return FileResponse(STATIC / "console.js", media_type="text/javascript", headers=HEADERS)


@router.get("/static/console.css")
def stylesheet() -> FileResponse:
    return FileResponse(STATIC / "console.css", media_type="text/css", headers=HEADERS)


__all__ = ["router"]
