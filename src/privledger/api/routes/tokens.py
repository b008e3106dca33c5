"""The node's API tokens, for its organisation's admins: list them (never the secrets) and revoke.

A token is issued on the node's host (``privledger node token``), bound to a user, one role and a
lifetime (90 days unless ``--ttl-days`` says otherwise). A revoked or expired token is refused
from the next admission on: an admitted token is remembered for ``ROLE_CACHE_S`` seconds.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from sqlmodel import Session, col, select

from privledger.api.deps import Caller, SessionDep, require
from privledger.api.errors import not_found
from privledger.evm.contracts import Role
from privledger.store.models import ApiToken, ApiUser
from privledger.wire.assets import TokenOut

router = APIRouter(prefix="/tokens", tags=["tokens"])
OrgAdmin = Annotated[Caller, Depends(require(Role.ORG_ADMIN))]
TokenId = Annotated[int, Path(ge=1, lt=2**63, description="token id (from GET /tokens)")]


def _out(token: ApiToken, user: ApiUser) -> TokenOut:
    if token.id is None:
        raise RuntimeError("a stored token has an id")
    return TokenOut(
        id=token.id,
        user=user.name,
        address=user.address,
        role=token.role,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked=token.revoked,
    )


def all_tokens(session: Session) -> list[TokenOut]:
    """Every token of this node, oldest first, without its secret."""
    rows = session.exec(
        select(ApiToken, ApiUser)
        .join(ApiUser, col(ApiUser.id) == col(ApiToken.user_id))
        .order_by(col(ApiToken.id))
    )
    return [_out(token, user) for token, user in rows]


def revoke(session: Session, token_id: int) -> TokenOut | None:
    """Revoke a token for good (idempotent); None if this node has no such token."""
    token = session.get(ApiToken, token_id)
    user = None if token is None else session.get(ApiUser, token.user_id)
    if token is None or user is None:
        return None
    token.revoked = True
    session.add(token)
    session.commit()
    session.refresh(token)
    return _out(token, user)


@router.get("", response_model=list[TokenOut])
def list_tokens(_caller: OrgAdmin, session: SessionDep) -> list[TokenOut]:
    """Every token of this node, oldest first, without its secret."""
    return all_tokens(session)


@router.post("/{token_id}/revoke", response_model=TokenOut)
def revoke_token(token_id: TokenId, _caller: OrgAdmin, session: SessionDep) -> TokenOut:
    """Revoke a token for good (idempotent)."""
    revoked = revoke(session, token_id)
    if revoked is None:
        raise not_found(f"token {token_id}")
    return revoked
