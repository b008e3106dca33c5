"""Request dependencies: the node, database sessions and the caller's verified role."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from weakref import WeakKeyDictionary

from fastapi import Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from privledger.api.errors import ApiError
from privledger.evm.contracts import Role
from privledger.node.context import ROLE_CACHE_S, NodeContext
from privledger.store.models import ApiToken, ApiUser, utc_now

TOKEN_PREFIX = "pl_"
DEFAULT_TOKEN_TTL = timedelta(days=90)  # a token nobody revokes still ends
ROLE_NAMES: dict[str, Role] = {
    "org_admin": Role.ORG_ADMIN,
    "data_owner": Role.DATA_OWNER,
    "operator": Role.OPERATOR,
    "auditor": Role.AUDITOR,
}

TaskId = Annotated[int, Path(ge=1, lt=2**63, description="task id on chain")]
OrgId = Annotated[int, Path(ge=1, lt=2**63, description="organisation id on chain")]

bearer = HTTPBearer(auto_error=False, description="an API token: `privledger node token`")


async def get_node(request: Request) -> NodeContext:
    node: NodeContext = request.app.state.node
    return node


async def get_session(node: Annotated[NodeContext, Depends(get_node)]) -> AsyncIterator[Session]:
    """A session for the request, opened and closed on the event loop rather than in two trips
    through the thread pool: opening does no I/O (it connects on first use, in the route's
    thread) and closing only hands the connection back to the pool."""
    with Session(node.engine) as session:
        yield session


NodeDep = Annotated[NodeContext, Depends(get_node)]
SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    user: ApiUser
    role: Role


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(
    session: Session, *, user_name: str, address: str, role: str, ttl: timedelta | None
) -> str:
    """Create (or reuse) the user and a new token bound to ``role``, valid for ``ttl`` (None:
    until revoked); only its hash is kept. The role itself is checked on chain at each use."""
    user = session.exec(select(ApiUser).where(ApiUser.name == user_name)).first()
    if user is None:
        user = ApiUser(name=user_name, address=address)
        session.add(user)
        session.flush()
    elif user.address.lower() != address.lower():
        raise ValueError(f"user {user_name!r} acts through {user.address}, not {address}")
    if user.id is None:
        raise RuntimeError("the user row has no id after flush")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = None if ttl is None else utc_now() + ttl
    session.add(
        ApiToken(token_hash=hash_token(token), user_id=user.id, role=role, expires_at=expires)
    )
    session.commit()
    return token


def issue_token(
    session: Session,
    *,
    user_name: str,
    address: str,
    role: str,
    ttl: timedelta | None = DEFAULT_TOKEN_TTL,
) -> str:
    """:func:`bearer_token` for one of the organisation roles (``ROLE_NAMES``)."""
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLE_NAMES)}")
    return bearer_token(session, user_name=user_name, address=address, role=role, ttl=ttl)


def token_user(
    request: Request, session: Session, credentials: HTTPAuthorizationCredentials | None
) -> tuple[ApiToken, ApiUser]:
    """The bearer token's row and its user (401 otherwise); the user is noted for the audit log."""
    if credentials is None:
        raise ApiError(401, "unauthorized", "an API token is required (Authorization: Bearer)")
    found = session.exec(  # one query for both rows
        select(ApiToken, ApiUser)
        .join(ApiUser, col(ApiUser.id) == col(ApiToken.user_id), isouter=True)
        .where(ApiToken.token_hash == hash_token(credentials.credentials))
    ).first()
    token, user = found if found is not None else (None, None)
    if token is None or token.revoked:
        raise ApiError(401, "unauthorized", "unknown or revoked API token")
    if token.expires_at is not None and token.expires_at <= utc_now():
        raise ApiError(401, "unauthorized", "expired API token: ask for a new one")
    if user is None:
        raise ApiError(401, "unauthorized", "the token's user no longer exists")
    request.state.audit_actor = f"{user.name} {user.address} ({token.role})"
    return token, user


def require(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting only tokens bound to one of ``roles`` whose user holds that role on
    chain now.

    An admitted token is admitted again for :data:`ROLE_CACHE_S` seconds without reading the
    database or the chain (the role read is cached that long anyway), so most requests pass
    on the event loop; a token revoked (or expired) meanwhile is refused once its admission
    expires."""

    async def dependency(
        request: Request,
        node: NodeDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        key = (hash_token(credentials.credentials) if credentials else "", roles)
        admitted = _admissions(node).get(key)
        if admitted is not None and admitted.until > time.monotonic():
            request.state.audit_actor = admitted.actor
            return admitted.caller
        caller = await run_in_threadpool(_admit, request, node, credentials, roles)
        admissions = _admissions(node)
        if len(admissions) >= MAX_ADMISSIONS:
            admissions.clear()
        admissions[key] = _Admission(
            caller, request.state.audit_actor, time.monotonic() + ROLE_CACHE_S
        )
        return caller

    return dependency


def _admit(
    request: Request,
    node: NodeContext,
    credentials: HTTPAuthorizationCredentials | None,
    roles: tuple[Role, ...],
) -> Caller:
    with Session(node.engine) as session:
        token, user = token_user(request, session, credentials)
    role = ROLE_NAMES.get(token.role)
    if role not in roles:
        wanted = " or ".join(str(r.name).lower() for r in roles)
        raise ApiError(403, "forbidden", f"this route needs a {wanted} token")
    if not node.has_role(user.address, role):
        raise ApiError(
            403, "forbidden", f"{user.address} does not hold the {role.name} role on chain"
        )
    return Caller(user, role)


@dataclass(frozen=True)
class _Admission:
    caller: Caller
    actor: str
    until: float


MAX_ADMISSIONS = 10_000
# per node database (tenants never share one): (token hash, roles) -> a recent admission
_ADMISSIONS: WeakKeyDictionary[Engine, dict[tuple[str, tuple[Role, ...]], _Admission]] = (
    WeakKeyDictionary()
)


def _admissions(node: NodeContext) -> dict[tuple[str, tuple[Role, ...]], _Admission]:
    return _ADMISSIONS.setdefault(node.engine, {})


DataOwner = Annotated[Caller, Depends(require(Role.DATA_OWNER))]
Operator = Annotated[Caller, Depends(require(Role.OPERATOR))]
Auditor = Annotated[Caller, Depends(require(Role.AUDITOR))]
Member = Annotated[Caller, Depends(require(*ROLE_NAMES.values()))]
