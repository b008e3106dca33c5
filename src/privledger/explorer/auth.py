"""Explorer login: sign a one-time challenge with an account that holds, on chain, the auditor
role (in any organisation: auditors usually belong to another org, e.g. a regulator), the operator
role in this node's own organisation, or the consortium admin's role. Auditors see the explorer
and the cockpit; this organisation's operators and the consortium admin see the cockpit only --
it is this node's operations view (its resource totals, its view of every node's health), not
another member's.

1. The node hands out a challenge: one line of text naming the node, the chain, a random nonce and
   an expiry (``CHALLENGE_TTL_S``). It is kept in memory and can be used once. Each client address
   holds at most ``MAX_CHALLENGES_PER_CLIENT`` outstanding challenges (its oldest is dropped for a
   new one), and when ``MAX_CHALLENGES`` are outstanding a new one drops the oldest of the address
   holding the most: an address asking for challenges in a loop only drops its own, never an
   auditor's elsewhere (the routes are rate limited per address as well, ``api.app``).
2. The auditor signs that exact text with EIP-191 ``personal_sign`` (any wallet's "sign message",
   or ``eth_account``) and sends address + signature back with the challenge.
3. The node recovers the signer, which must be the claimed address, and asks the chain which roles
   the address holds in its own organisation and whether it is the consortium admin: one of the
   three above is needed (another organisation's operator is refused, 403). Then it opens a
   session: an opaque random id in an HttpOnly, SameSite=Strict cookie, mapped in memory to the
   address (``SESSION_TTL_S``).
4. Every later request re-reads the roles on chain, so a viewer whose role is revoked is refused
   (403) at once, and a missing or expired session is a 401.

Challenges and sessions live in this process only: a restarted node forgets them.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import is_address, to_checksum_address
from fastapi import Request

from privledger.api.routes.onboarding import is_consortium_admin
from privledger.evm.contracts import Role
from privledger.node.context import NodeContext

CHALLENGE_TTL_S = 300.0
SESSION_TTL_S = 3600
SESSION_COOKIE = "pl_explorer"
MAX_CHALLENGES = 10_000
MAX_CHALLENGES_PER_CLIENT = 16
MAX_SESSIONS = 10_000


class AuthFailure(Exception):
    """Login or session refused: ``status`` is 401 (who are you?) or 403 (role missing)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ViewerSession:
    address: str
    org_id: int
    roles: Role  # those that count on this node: auditor (any org), operator (this node's org)
    consortium_admin: bool  # admitted as the consortium admin (asked only if no role admits)
    expires_at: float


@dataclass
class ExplorerAuth:
    """Outstanding challenges and open sessions of one node process."""

    challenges: dict[str, tuple[str, float]] = field(default_factory=dict)  # text: client, expiry
    by_client: dict[str, dict[str, None]] = field(default_factory=dict)  # its texts, oldest first
    sessions: dict[str, ViewerSession] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- challenges -------------------------------------------------------------------------
    def new_challenge(
        self, org_name: str, org_id: int, chain_id: int, client: str
    ) -> tuple[str, int]:
        """A fresh single-use challenge text for the client at address ``client`` and its expiry
        (unix seconds)."""
        expires_unix = int(time.time() + CHALLENGE_TTL_S)
        until = datetime.fromtimestamp(expires_unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = (
            f"privledger explorer login: node {org_name} (org {org_id}), chain {chain_id}, "
            f"nonce {secrets.token_hex(16)}, valid until {until}"
        )
        now = time.monotonic()
        with self.lock:
            self._purge(now)
            own = self.by_client.get(client, {})
            if len(own) >= MAX_CHALLENGES_PER_CLIENT:
                self._drop(next(iter(own)))
            elif len(self.challenges) >= MAX_CHALLENGES:
                busiest = max(self.by_client.values(), key=len)
                self._drop(next(iter(busiest)))
            self.challenges[text] = (client, now + CHALLENGE_TTL_S)
            self.by_client.setdefault(client, {})[text] = None
        return text, expires_unix

    def take_challenge(self, text: str) -> None:
        """Consume ``text``: it must have been issued here, unused and unexpired."""
        with self.lock:
            found = self.challenges.get(text)
            if found is not None:
                self._drop(text)
        if found is None:
            raise AuthFailure(401, "invalid_challenge", "unknown or already used challenge")
        if found[1] <= time.monotonic():
            raise AuthFailure(401, "invalid_challenge", "the challenge expired; ask for a new one")

    def _drop(self, text: str) -> None:
        client, _ = self.challenges.pop(text)
        own = self.by_client[client]
        del own[text]
        if not own:
            del self.by_client[client]

    def _purge(self, now: float) -> None:
        for text in [t for t, (_, expiry) in self.challenges.items() if expiry <= now]:
            self._drop(text)
        for sid in [s for s, sess in self.sessions.items() if sess.expires_at <= now]:
            del self.sessions[sid]

    # --- login and sessions -----------------------------------------------------------------
    def login(self, node: NodeContext, challenge: str, address: str, signature: str) -> str:
        """Check the signed challenge and the viewer's roles on chain; a new session id."""
        self.take_challenge(challenge)  # single use, whatever happens next
        if not is_address(address):
            raise AuthFailure(401, "invalid_signature", "address is not an Ethereum address")
        try:
            signer = Account.recover_message(encode_defunct(text=challenge), signature=signature)
        except Exception as exc:  # malformed hex, wrong length, invalid v/r/s
            raise AuthFailure(401, "invalid_signature", "the signature cannot be read") from exc
        if signer.lower() != address.lower():
            raise AuthFailure(
                401, "invalid_signature", "the challenge was not signed by this address"
            )
        checksum = to_checksum_address(address)
        org_id, roles, admin = viewer_roles(node, checksum)
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self.lock:
            self._purge(now)
            while len(self.sessions) >= MAX_SESSIONS:
                del self.sessions[next(iter(self.sessions))]
            self.sessions[session_id] = ViewerSession(
                checksum, org_id, roles, admin, now + SESSION_TTL_S
            )
        return session_id

    def logout(self, session_id: str) -> None:
        with self.lock:
            self.sessions.pop(session_id, None)

    def session(self, node: NodeContext, session_id: str | None) -> ViewerSession:
        """The open session ``session_id`` with its holder's roles read from the chain now."""
        if not session_id:
            raise AuthFailure(401, "unauthorized", "log in as an auditor or operator first")
        with self.lock:
            found = self.sessions.get(session_id)
            if found is not None and found.expires_at <= time.monotonic():
                del self.sessions[session_id]
                found = None
        if found is None:
            raise AuthFailure(401, "unauthorized", "the session expired or is unknown; log in")
        org_id, roles, admin = viewer_roles(node, found.address)
        return replace(found, org_id=org_id, roles=roles, consortium_admin=admin)


def viewer_roles(node: NodeContext, address: str) -> tuple[int, Role, bool]:
    """The org of ``address``, the roles it holds now that count on this node (the auditor role
    of any organisation, the operator role of this node's) and whether it is admitted as the
    consortium admin; none of these is a 403."""
    org_id = node.ledger.orgs.org_of(address)
    held = Role(node.ledger.orgs.roles_of(address)) if org_id else Role(0)
    roles = held & (Role.AUDITOR | Role.OPERATOR if org_id == node.org_id else Role.AUDITOR)
    admin = not roles and is_consortium_admin(node, address)
    if not roles and not admin:
        raise AuthFailure(
            403,
            "forbidden",
            f"{address} holds no auditor role, no operator role in organisation {node.org_id} "
            "and is not the consortium admin on chain",
        )
    return org_id, roles, admin


_STATE_LOCK = threading.Lock()


def explorer_auth(request: Request) -> ExplorerAuth:
    """The app's auth state, created on first use."""
    state = request.app.state
    with _STATE_LOCK:
        auth: ExplorerAuth | None = getattr(state, "explorer_auth", None)
        if auth is None:
            auth = ExplorerAuth()
            state.explorer_auth = auth
    return auth
