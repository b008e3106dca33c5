"""The auditor explorer: HTML pages under /explorer and their JSON twins under /explorer/api.

Public: the login page, the challenge, login itself and the stylesheet. Everything else needs an
auditor session (see ``auth``): without one, JSON routes answer 401 and pages redirect (303) to the
login page; a session whose holder lost the auditor role on chain gets 403.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from privledger.api.deps import NodeDep
from privledger.api.errors import error_body
from privledger.api.schemas import Body
from privledger.node.context import NodeContext

from .auth import SESSION_COOKIE, SESSION_TTL_S, AuditorSession, AuthFailure, explorer_auth
from .story import TaskStory, task_exists, task_rows, task_story
from .verify import (
    Verdict,
    VerifyInputError,
    parse_items,
    parse_org_id,
    parse_salt,
    parse_task_id,
    verify_result,
)

HERE = Path(__file__).parent
PREFIX = "/explorer"
LOGIN_PAGE = f"{PREFIX}/login"
PAGE_SIZE = 50
STATIC_FILES = {"explorer.css": "text/css", "login.js": "text/javascript"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class PageNotFound(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _utc(value: int) -> str:
    return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _eth(wei: int) -> str:
    ether = f"{int(wei) / 10**18:.6f}".rstrip("0").rstrip(".")
    return f"{ether} ETH"


def _short(value: object) -> str:
    text = str(value)
    return f"{text[:10]}…{text[-6:]}" if text.startswith("0x") and len(text) > 20 else text


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters.update(utc=_utc, eth=_eth, short=_short)
templates = Jinja2Templates(env=_env)


def _is_json(request: Request) -> bool:
    return request.url.path.startswith(f"{PREFIX}/api/")


def _org_name(node: NodeContext) -> str:
    return node.ledger.orgs.get_org(node.org_id).name


def page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    auditor: AuditorSession | None = None,
    status_code: int = 200,
) -> Response:
    node: NodeContext = request.app.state.node
    base = {"node_org": _org_name(node), "node_org_id": node.org_id, "auditor": auditor}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


class ExplorerRoute(APIRoute):
    """Turns refusals into 401/403 JSON on /explorer/api, a login redirect or an error page
    elsewhere, and adds the security headers to every explorer response."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def explorer_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except AuthFailure as exc:
                if _is_json(request):
                    response = JSONResponse(error_body(exc.code, exc.message), exc.status)
                elif exc.status == 401:
                    response = RedirectResponse(LOGIN_PAGE, status_code=303)
                else:
                    context = {"title": "Forbidden", "message": exc.message}
                    response = await run_in_threadpool(
                        page, request, "error.html", context, status_code=exc.status
                    )
            except PageNotFound as exc:
                if _is_json(request):
                    response = JSONResponse(error_body("not_found", exc.message), 404)
                else:
                    context = {"title": "Not found", "message": exc.message}
                    response = await run_in_threadpool(
                        page, request, "error.html", context, status_code=404
                    )
            except VerifyInputError as exc:
                response = JSONResponse(error_body(exc.code, exc.message), exc.status)
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return explorer_handler


router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ExplorerRoute)


def current_auditor(request: Request, node: NodeDep) -> AuditorSession:
    return explorer_auth(request).session(node, request.cookies.get(SESSION_COOKIE))


Auditor = Annotated[AuditorSession, Depends(current_auditor)]


def _set_session(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_TTL_S,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _task_id(text: str) -> int:
    if not text.isdigit() or len(text) > 20:
        raise PageNotFound(f"no task {text!r}: task ids are whole numbers")
    return int(text)


def _story(node: NodeContext, text: str) -> TaskStory:
    task_id = _task_id(text)
    if not task_exists(node, task_id):
        raise PageNotFound(f"task {task_id} is not on the ledger")
    return task_story(node, task_id)


# --- public: style, login ---------------------------------------------------------------------
@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise PageNotFound(f"no static file {name!r}")
    return FileResponse(HERE / "static" / name, media_type=STATIC_FILES[name])


@router.get("/login")
def login_page(request: Request, node: NodeDep) -> Response:
    challenge, expires = explorer_auth(request).new_challenge(
        _org_name(node), node.org_id, node.ledger.client.chain_id
    )
    return page(request, "login.html", {"challenge": challenge, "expires": expires, "error": None})


@router.post("/login")
def login_form(
    request: Request,
    node: NodeDep,
    challenge: Annotated[str, Form(max_length=400)] = "",
    address: Annotated[str, Form(max_length=100)] = "",
    signature: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    auth = explorer_auth(request)
    try:
        session_id = auth.login(node, challenge, address.strip(), signature.strip())
    except AuthFailure as exc:
        fresh, expires = auth.new_challenge(
            _org_name(node), node.org_id, node.ledger.client.chain_id
        )
        context = {"challenge": fresh, "expires": expires, "error": exc.message}
        return page(request, "login.html", context, status_code=exc.status)
    response = RedirectResponse(f"{PREFIX}/tasks", status_code=303)
    _set_session(request, response, session_id)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        explorer_auth(request).logout(session_id)
    response = RedirectResponse(LOGIN_PAGE, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


class LoginIn(Body):
    challenge: str = Field(min_length=1, max_length=400)
    address: str = Field(min_length=1, max_length=100)
    signature: str = Field(min_length=1, max_length=300)


@router.post("/api/challenge")
def challenge(request: Request, node: NodeDep) -> dict[str, Any]:
    """A single-use challenge to sign (EIP-191 personal_sign) within ``expiresAt``."""
    text, expires = explorer_auth(request).new_challenge(
        _org_name(node), node.org_id, node.ledger.client.chain_id
    )
    return {"challenge": text, "expiresAt": expires}


@router.post("/api/login")
def login(body: LoginIn, request: Request, node: NodeDep) -> Response:
    auth = explorer_auth(request)
    session_id = auth.login(node, body.challenge, body.address.strip(), body.signature.strip())
    session = auth.session(node, session_id)
    response = JSONResponse(
        {"address": session.address, "orgId": session.org_id, "expiresIn": SESSION_TTL_S}
    )
    _set_session(request, response, session_id)
    return response


# --- auditor pages ----------------------------------------------------------------------------
@router.get("")
def home(_auditor: Auditor) -> Response:
    return RedirectResponse(f"{PREFIX}/tasks", status_code=303)


@router.get("/tasks")
def tasks_page(
    request: Request,
    node: NodeDep,
    auditor: Auditor,
    task: Annotated[str, Query(max_length=40)] = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> Response:
    search = task.strip()
    error = None
    if search:
        if search.isdigit() and len(search) <= 20:
            return RedirectResponse(f"{PREFIX}/tasks/{int(search)}", status_code=303)
        error = f"{search!r} is not a task id: task ids are whole numbers"
    rows, total = task_rows(node, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    context = {
        "rows": rows,
        "total": total,
        "page_no": page_no,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "search": search,
        "error": error,
    }
    return page(request, "tasks.html", context, auditor=auditor, status_code=400 if error else 200)


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: str, node: NodeDep, auditor: Auditor) -> Response:
    return page(request, "task.html", {"t": _story(node, task_id)}, auditor=auditor)


@router.get("/api/tasks")
def tasks_json(
    node: NodeDep,
    _auditor: Auditor,
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> dict[str, Any]:
    rows, total = task_rows(node, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return {"total": total, "page": page_no, "tasks": [row.__dict__ for row in rows]}


@router.get("/api/tasks/{task_id}")
def task_json(task_id: str, node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    return _story(node, task_id).as_json()


# --- verify a result --------------------------------------------------------------------------
def _verdict(
    node: NodeContext, task_id: str, org_id: str, salt: str, result_file: UploadFile | None
) -> Verdict:
    limit = node.settings.max_json_body_bytes
    if result_file is None:
        raise VerifyInputError(400, "invalid_file", "choose the result file to verify")
    content = result_file.file.read(limit + 1)
    if len(content) > limit:
        raise VerifyInputError(413, "too_large", f"a result file is at most {limit} bytes")
    task = parse_task_id(task_id)
    org = parse_org_id(org_id)
    items, file_salt = parse_items(content)
    salt_bytes = parse_salt(salt if salt.strip() or file_salt is None else file_salt)
    return verify_result(node, task, org, salt_bytes, items)


VerifyField = Annotated[str, Form(max_length=200)]
ResultFile = Annotated[UploadFile | None, File()]


@router.get("/verify")
def verify_page(
    request: Request,
    auditor: Auditor,
    task: Annotated[str, Query(max_length=40)] = "",
    org: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    context = {"form": {"task_id": task, "org_id": org, "salt": ""}, "verdict": None, "error": None}
    return page(request, "verify.html", context, auditor=auditor)


@router.post("/verify")
def verify_form(
    request: Request,
    node: NodeDep,
    auditor: Auditor,
    task_id: VerifyField = "",
    org_id: VerifyField = "",
    salt: VerifyField = "",
    result_file: ResultFile = None,
) -> Response:
    form = {"task_id": task_id, "org_id": org_id, "salt": salt}
    try:
        verdict = _verdict(node, task_id, org_id, salt, result_file)
    except VerifyInputError as exc:
        failed: dict[str, Any] = {"form": form, "verdict": None, "error": exc.message}
        return page(request, "verify.html", failed, auditor=auditor, status_code=exc.status)
    context: dict[str, Any] = {"form": form, "verdict": verdict, "error": None}
    return page(request, "verify.html", context, auditor=auditor)


@router.post("/api/verify")
def verify_json(
    node: NodeDep,
    _auditor: Auditor,
    task_id: VerifyField = "",
    org_id: VerifyField = "",
    salt: VerifyField = "",
    result_file: ResultFile = None,
) -> dict[str, Any]:
    """Multipart: task_id, org_id, salt (0x + 64 hex; may be left empty when the file is the
    whole result object, whose salt is then used) and result_file."""
    return _verdict(node, task_id, org_id, salt, result_file).as_json()
