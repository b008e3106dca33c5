"""Login, the task pages and result verification of the explorer (HTML under /explorer, JSON
twins under /explorer/api; below /t/<org> on a tenant host).

Public: the login page, the challenge, login itself and the static files. Everything else needs a
session (see ``auth``): without one, JSON routes answer 401 and pages redirect (303) to the login
page; explorer pages need the auditor role (else 403), the cockpit any session: an auditor, an
operator of this node's organisation or the consortium admin (``auth``; no one else logs in).
The login page, the challenge and login itself are rate limited per client address like the
API's anonymous calls (``api.app``: ``LOGIN_ROUTES``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import Field
from sqlmodel import Session

from privledger.api.deps import NodeDep
from privledger.api.ratelimit import client_key
from privledger.api.schemas import Body
from privledger.evm.contracts import Role
from privledger.node.context import NodeContext
from privledger.wire.numerals import ascii_number

from .auth import SESSION_COOKIE, SESSION_TTL_S, AuthFailure, explorer_auth
from .directory import Directory
from .resources import task_resources
from .story import TaskStory, task_count, task_exists, task_rows, task_story
from .verify import (
    Verdict,
    VerifyInputError,
    parse_items,
    parse_org_id,
    parse_salt,
    parse_sha256,
    parse_task_id,
    verify_output,
    verify_result,
)
from .web import (
    HERE,
    PREFIX,
    Auditor,
    ExplorerRoute,
    PageNotFound,
    check_page,
    explorer_root,
    page,
    page_number,
)

PAGE_SIZE = 50
STATIC_FILES = {
    "explorer.css": "text/css",
    "login.js": "text/javascript",
    "cockpit.js": "text/javascript",
}

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ExplorerRoute)
# the public routes that hand out a challenge or check one: rate limited per client address
LOGIN_ROUTES = (f"{PREFIX}/login", f"{PREFIX}/api/challenge", f"{PREFIX}/api/login")


def _new_challenge(request: Request, node: NodeContext) -> tuple[str, int]:
    """A challenge for the caller, counted against its client address."""
    node.indexer.sync()
    with Session(node.engine) as session:
        org_name = Directory.load(session).org_name(node.org_id)
    client = client_key(request.client.host if request.client else "")
    return explorer_auth(request).new_challenge(
        org_name, node.org_id, node.ledger.client.chain_id, client
    )


def _set_session(request: Request, response: Response, session_id: str) -> None:
    """The session cookie, sent back only to this explorer (``/t/<org>/explorer`` on a tenant
    host: never to another tenant's explorer, which would not know the session anyway)."""
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_TTL_S,
        path=explorer_root(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _task_id(text: str) -> int:
    task_id = ascii_number(text)
    if task_id is None:
        raise PageNotFound(f"no task {text!r}: task ids are whole numbers")
    return task_id


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
    challenge, expires = _new_challenge(request, node)
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
        fresh, expires = _new_challenge(request, node)
        context = {"challenge": fresh, "expires": expires, "error": exc.message}
        return page(request, "login.html", context, status_code=exc.status)
    roles = auth.session(node, session_id).roles
    landing = "tasks" if roles & Role.AUDITOR else "cockpit"
    response = RedirectResponse(f"{explorer_root(request)}/{landing}", status_code=303)
    _set_session(request, response, session_id)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        explorer_auth(request).logout(session_id)
    root = explorer_root(request)
    response = RedirectResponse(f"{root}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=root)
    return response


class LoginIn(Body):
    challenge: str = Field(min_length=1, max_length=400)
    address: str = Field(min_length=1, max_length=100)
    signature: str = Field(min_length=1, max_length=300)


@router.post("/api/challenge")
def challenge(request: Request, node: NodeDep) -> dict[str, Any]:
    """A single-use challenge to sign (EIP-191 personal_sign) within ``expiresAt``."""
    text, expires = _new_challenge(request, node)
    return {"challenge": text, "expiresAt": expires}


@router.post("/api/login")
def login(body: LoginIn, request: Request, node: NodeDep) -> Response:
    auth = explorer_auth(request)
    session_id = auth.login(node, body.challenge, body.address.strip(), body.signature.strip())
    session = auth.session(node, session_id)
    roles = [role.name.lower() for role in Role if role & session.roles and role.name]
    response = JSONResponse(
        {
            "address": session.address,
            "orgId": session.org_id,
            "roles": roles,
            "consortiumAdmin": session.consortium_admin,
            "expiresIn": SESSION_TTL_S,
        }
    )
    _set_session(request, response, session_id)
    return response


# --- tasks ------------------------------------------------------------------------------------
def _task_page(node: NodeContext, page_text: str) -> dict[str, Any]:
    page_no = page_number(page_text)
    node.indexer.sync()
    with Session(node.engine) as session:
        total = task_count(session)
        pages = check_page(page_no, total, PAGE_SIZE)
        rows = task_rows(session, offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return {"rows": rows, "total": total, "page_no": page_no, "pages": pages}


PageText = Annotated[str, Query(alias="page", max_length=20)]


@router.get("/tasks")
def tasks_page(
    request: Request,
    node: NodeDep,
    auditor: Auditor,
    task: Annotated[str, Query(max_length=40)] = "",
    page_text: PageText = "",
) -> Response:
    search = task.strip()
    error = None
    if search:
        task_id = ascii_number(search)
        if task_id is not None:
            found = f"{explorer_root(request)}/tasks/{task_id}"
            return RedirectResponse(found, status_code=303)
        error = f"{search!r} is not a task id: task ids are whole numbers"
    context = {**_task_page(node, page_text), "search": search, "error": error}
    return page(request, "tasks.html", context, viewer=auditor, status_code=400 if error else 200)


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: str, node: NodeDep, auditor: Auditor) -> Response:
    story = _story(node, task_id)
    context = {"t": story, "resources": task_resources(node, story.task_id)}
    return page(request, "task.html", context, viewer=auditor)


@router.get("/api/tasks")
def tasks_json(node: NodeDep, _auditor: Auditor, page_text: PageText = "") -> dict[str, Any]:
    found = _task_page(node, page_text)
    return {
        "total": found["total"],
        "page": found["page_no"],
        "pages": found["pages"],
        "tasks": [row.__dict__ for row in found["rows"]],
    }


@router.get("/api/tasks/{task_id}")
def task_json(task_id: str, node: NodeDep, _auditor: Auditor) -> dict[str, Any]:
    story = _story(node, task_id)
    return {**story.as_json(), "resources": task_resources(node, story.task_id)}


# --- verify a result --------------------------------------------------------------------------
def _verdict(
    node: NodeContext,
    task_id: str,
    org_id: str,
    salt: str,
    result_file: UploadFile | None,
    result_sha256: str,
) -> Verdict:
    limit = node.settings.max_json_body_bytes
    if result_sha256.strip():  # given for a file too large to upload: the file is not read
        digest = parse_sha256(result_sha256)
        task, org = parse_task_id(task_id), parse_org_id(org_id)
        return verify_output(node, task, org, parse_salt(salt), digest, None)
    if result_file is None:
        raise VerifyInputError(
            400, "invalid_file", "choose the result file to verify, or give its SHA-256"
        )
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
    form = {"task_id": task, "org_id": org, "salt": "", "result_sha256": ""}
    context = {"form": form, "verdict": None, "error": None}
    return page(request, "verify.html", context, viewer=auditor)


@router.post("/verify")
def verify_form(
    request: Request,
    node: NodeDep,
    auditor: Auditor,
    task_id: VerifyField = "",
    org_id: VerifyField = "",
    salt: VerifyField = "",
    result_file: ResultFile = None,
    result_sha256: VerifyField = "",
) -> Response:
    form = {"task_id": task_id, "org_id": org_id, "salt": salt, "result_sha256": result_sha256}
    try:
        verdict = _verdict(node, task_id, org_id, salt, result_file, result_sha256)
    except VerifyInputError as exc:
        failed: dict[str, Any] = {"form": form, "verdict": None, "error": exc.message}
        return page(request, "verify.html", failed, viewer=auditor, status_code=exc.status)
    context: dict[str, Any] = {"form": form, "verdict": verdict, "error": None}
    return page(request, "verify.html", context, viewer=auditor)


@router.post("/api/verify")
def verify_json(
    node: NodeDep,
    _auditor: Auditor,
    task_id: VerifyField = "",
    org_id: VerifyField = "",
    salt: VerifyField = "",
    result_file: ResultFile = None,
    result_sha256: VerifyField = "",
) -> dict[str, Any]:
    """Multipart: task_id, org_id, salt (0x + 64 hex; may be left empty when the file is the
    whole result object, whose salt is then used) and result_file -- or, for a result file too
    large to upload, its SHA-256 as result_sha256 (0x + 64 hex) instead."""
    return _verdict(node, task_id, org_id, salt, result_file, result_sha256).as_json()
