"""Onboarding portal (F16): an organisation applies to join the consortium, the consortium admin
reviews, and an approved application is registered on chain; the applicant tracks its progress.

Any node can host the portal (in the demo, the regulator's). Applying and tracking need no token:
an application gets an id and a one-time tracking secret that only the applicant sees (the node
keeps its SHA-256), sent back in the ``X-Tracking-Secret`` header; an unknown id and a wrong secret
get the same 404, so the portal does not reveal which applications exist. The id opens with short
tags of the client's address and network (:func:`origin_tags`), then 80 random bits: the portal
holds at most so many open applications per address and per network, so that a client without
credentials cannot fill it for everyone (it filled the portal's 1,000 in 94 s), without keeping
anyone's address. The tags are keyed with a secret of the node (:func:`origin_key`): unkeyed, an
IPv4 address was recovered from an id by hashing the candidates. An application nobody decided
expires after ``onboarding_expiry_days`` (30 by default): it stops counting against any cap and
shows as ``expired``, so made-up applications cannot fill the portal for good.

Reviewing needs a ``consortium_admin`` token (:func:`issue_consortium_admin_token`) whose account
holds OrgRegistry's consortium-admin role (``DEFAULT_ADMIN_ROLE``) on chain at request time.
Approval sends ``registerOrg(name, admin, endpoint, nodeKey)`` (which makes the applicant's account
the org admin) and, when further roles were requested, ``grantRoles(orgId, admin, roles)``; the
consortium admin signs them either

- custodially: the node's keystore holds the admin's key and the node signs and sends both; or
- non-custodially: the admin fetches the exact calldata (``GET .../transactions``), signs the
  transactions wherever the key lives, and posts the raw transactions to ``.../approve``; the node
  accepts them only if each is signed by the caller, targets OrgRegistry and carries exactly the
  expected calldata, pre-flights each, and relays them in order.

Both paths end the same way: the org id is read from the ``OrgRegistered`` event of the mined
registration and the transaction hashes are kept on the application for the applicant to see.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Literal, cast

from eth_account import Account
from eth_utils.address import is_checksum_address, to_checksum_address
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials
from hexbytes import HexBytes
from pydantic import Field, field_validator
from sqlmodel import Session, col, select

from privledger.api.deps import (
    DEFAULT_TOKEN_TTL,
    NodeDep,
    SessionDep,
    bearer,
    bearer_token,
    token_user,
)
from privledger.api.errors import ApiError
from privledger.api.ratelimit import client_key
from privledger.api.routes.transactions import _broadcast, _target_and_data
from privledger.api.schemas import Body
from privledger.evm.client import SentTransaction
from privledger.evm.contracts import OrgStatus, Role
from privledger.node.context import NodeContext
from privledger.store.models import ApiUser, OnboardingApplication, as_utc, utc_now
from privledger.wire.onboarding import (
    ApplicationCreated,
    ApplicationOut,
    ApplicationStatus,
    ApprovalTemplate,
    RoleName,
    UnsignedTx,
)

router = APIRouter(prefix="/onboarding", tags=["onboarding"])

CONSORTIUM_ADMIN = "consortium_admin"
DEFAULT_ADMIN_ROLE = bytes(32)  # OpenZeppelin AccessControl's admin role: the consortium admin
SECRET_HEADER = "X-Tracking-Secret"
# Open applications (submitted or under review) the portal holds: in all, so that the public form
# cannot fill the database; from one client address (an IPv6 /64), so that one client cannot fill
# the portal; from one network (an IPv4 /24, an IPv6 /48), so that filling it takes many networks
MAX_OPEN_APPLICATIONS = 1_000
MAX_OPEN_PER_ADDRESS = 20
MAX_OPEN_PER_NETWORK = 100
ORIGIN_TAG_HEX = 6  # an application id opens with its address's tag, then its network's
ORIGIN_KEY_FILE = "onboarding-origin.key"  # in the keystore directory, beside the node's keys
ORIGIN_KEY_BYTES = 32
REQUESTABLE_ROLES: dict[str, Role] = {
    "data_owner": Role.DATA_OWNER,
    "operator": Role.OPERATOR,
    "auditor": Role.AUDITOR,
}
OPEN = ("submitted", "under_review")
ShownStatus = Literal["submitted", "under_review", "approved", "rejected", "expired"]

ApplicationId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{32}$", description="the application id returned on submission")
]


class ApplicationIn(Body):
    org_name: str = Field(
        pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
        description="the organisation's name on chain: lower-case letters, digits and dashes",
    )
    # printable text only: a reviewer reads it, and PostgreSQL cannot store a NUL
    contact_name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    contact_email: str = Field(
        max_length=254, pattern=r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[A-Za-z]{2,}$"
    )
    admin_address: str = Field(
        pattern=r"^0x[0-9a-fA-F]{40}$", description="the account that becomes the org admin"
    )
    node_endpoint: str = Field(
        max_length=200,
        pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$",
        description="the base URL of the organisation's node",
    )
    node_public_key: str = Field(
        pattern=r"^(0x)?[0-9a-fA-F]{64}$", description="the node's X25519 public key, 32 bytes hex"
    )
    requested_roles: list[RoleName] = Field(
        default_factory=list,
        max_length=3,
        description="roles for the admin account besides org admin",
    )

    @field_validator("admin_address")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        mixed = value[2:] != value[2:].lower() and value[2:] != value[2:].upper()
        if mixed and not is_checksum_address(value):
            raise ValueError("the address's mixed-case checksum is wrong")
        if int(value, 16) == 0:
            raise ValueError("the zero address cannot administer an organisation")
        return value

    @field_validator("node_public_key")
    @classmethod
    def _nonzero_key(cls, value: str) -> str:
        if int(value.removeprefix("0x"), 16) == 0:
            raise ValueError("the node key cannot be zero")
        return value

    @field_validator("requested_roles")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each role at most once")
        return value


class RejectIn(Body):
    reason: str = Field(min_length=1, max_length=1_000)


class ApproveIn(Body):
    signed_transactions: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="non-custodial: the raw registerOrg (then grantRoles) transactions the "
        "consortium admin signed; omit to have the node sign with the admin's key (custodial)",
    )

    @field_validator("signed_transactions")
    @classmethod
    def _hex(cls, value: list[str] | None) -> list[str] | None:
        for raw in value or []:
            if len(raw) > 65_536 or not raw.startswith("0x") or len(raw) < 4:
                raise ValueError("each transaction is 0x-prefixed hex")
            bytes.fromhex(raw[2:])
        return value


def issue_consortium_admin_token(session: Session, *, user_name: str, address: str) -> str:
    """A new review token for the consortium admin ``address`` on this node; only its hash is
    kept. The role itself is checked on chain at every request."""
    return bearer_token(
        session, user_name=user_name, address=address, role=CONSORTIUM_ADMIN, ttl=DEFAULT_TOKEN_TTL
    )


def is_consortium_admin(node: NodeContext, address: str) -> bool:
    orgs = node.ledger.orgs
    return bool(
        node.ledger.client.call(orgs.contract.functions.hasRole(DEFAULT_ADMIN_ROLE, address))
    )


def consortium_admin(
    request: Request,
    node: NodeDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiUser:
    """The caller, if its token is a consortium-admin token and its account the consortium admin
    on chain now."""
    token, user = token_user(request, session, credentials)
    if token.role != CONSORTIUM_ADMIN:
        raise ApiError(403, "forbidden", "reviewing applications needs a consortium_admin token")
    if not is_consortium_admin(node, user.address):
        raise ApiError(403, "forbidden", f"{user.address} is not the consortium admin on chain")
    return user


Reviewer = Annotated[ApiUser, Depends(consortium_admin)]


def _roles(names: list[RoleName]) -> Role:
    roles = Role.ORG_ADMIN
    for name in names:
        roles |= REQUESTABLE_ROLES[name]
    return roles


def _role_names(roles: int) -> list[RoleName]:
    names: list[RoleName] = ["data_owner", "operator", "auditor"]
    return [name for name in names if roles & REQUESTABLE_ROLES[name]]


def _expiry_cutoff(node: NodeContext) -> datetime:
    """Open applications submitted before this have expired."""
    return utc_now() - timedelta(days=node.settings.onboarding_expiry_days)


def _shown_status(row: OnboardingApplication, cutoff: datetime) -> ShownStatus:
    """The stored status, or ``expired`` for an open application past its expiry (stored as
    such once an application finds it so)."""
    if row.status in OPEN and as_utc(row.submitted_at) < cutoff:
        return "expired"
    return cast(ShownStatus, row.status)


def _status(row: OnboardingApplication, cutoff: datetime) -> ApplicationStatus:
    return ApplicationStatus(
        application_id=row.id,
        org_name=row.org_name,
        status=_shown_status(row, cutoff),
        submitted_at=row.submitted_at,
        review_started_at=row.review_started_at,
        decided_at=row.decided_at,
        reason=row.reason,
        org_id=row.org_id,
        tx_hashes=list(row.tx_hashes),
    )


def _out(row: OnboardingApplication, cutoff: datetime) -> ApplicationOut:
    return ApplicationOut(
        **_status(row, cutoff).model_dump(),
        contact_name=row.contact_name,
        contact_email=row.contact_email,
        admin_address=row.admin_address,
        node_endpoint=row.endpoint,
        node_public_key=row.node_key,
        requested_roles=_role_names(row.roles),
        reviewer=row.reviewer,
    )


def _load(session: Session, application_id: str) -> OnboardingApplication:
    row = session.get(OnboardingApplication, application_id)
    if row is None:
        raise ApiError(404, "not_found", f"application {application_id} not found")
    return row


def _check_free_on_chain(node: NodeContext, name: str, admin: str) -> None:
    """409 unless ``name`` is not taken and ``admin`` is no member of any organisation."""
    orgs = node.ledger.orgs
    if orgs.org_of(admin) != 0:
        raise ApiError(409, "already_member", f"{admin} is already a member of an organisation")
    for org_id in range(1, orgs.org_count() + 1):
        if orgs.get_org(org_id).name == name:
            raise ApiError(409, "name_taken", f"an organisation named {name!r} exists on chain")


def origin_key(keystore_dir: FilePath) -> bytes:
    """The node's key for origin tags: 32 bytes from ``secrets``, made on first use and kept in
    the keystore directory (mode 0600), so every API process of the node and the node after a
    restart tag an address alike and the caps go on counting the applications already open."""
    path = keystore_dir / ORIGIN_KEY_FILE
    if not path.is_file():
        keystore_dir.mkdir(parents=True, exist_ok=True)
        # written whole under a name of its own, then linked into place: a process racing to
        # make it too reads the winner's key, never a partly written one
        draft = keystore_dir / f".{ORIGIN_KEY_FILE}.{secrets.token_hex(8)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(ORIGIN_KEY_BYTES))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = path.read_bytes()
    if len(key) != ORIGIN_KEY_BYTES:
        raise RuntimeError(f"{path} holds {len(key)} bytes, not a {ORIGIN_KEY_BYTES}-byte key")
    return key


def origin_tags(host: str, key: bytes) -> tuple[str, str]:
    """The tags of a client's address and network, each the first hex digits of an HMAC-SHA256
    under the node's ``key`` (:func:`origin_key`): an application id opens with them, so the
    portal counts open applications per address and per network without keeping anyone's
    address, and nobody without the key can tell an address from an id. The address is the one
    the anonymous-calls limit counts under (the connection's peer, or the client a trusted proxy
    names; an IPv6 /64: ``api.ratelimit.client_key``); the network its IPv4 /24 or IPv6 /48."""
    address = network = client_key(host)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass  # not an IP address (a Unix socket, a test client): the address is its network
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        network = str(ipaddress.ip_network((ip, 24 if ip.version == 4 else 48), strict=False))

    def tag(kind: str, name: str) -> str:
        digest = hmac.new(key, f"onboarding {kind} {name}".encode(), hashlib.sha256)
        return digest.hexdigest()[:ORIGIN_TAG_HEX]

    return tag("address", address), tag("network", network)


def _check_room(open_rows: Sequence[OnboardingApplication], address: str, network: str) -> None:
    """429 when the portal, the client's address or its network holds too many open
    applications: a client filling its own share blocks only itself and its network."""
    if len(open_rows) >= MAX_OPEN_APPLICATIONS:
        raise ApiError(429, "too_many_applications", "the portal is full; try again later")
    tags = [row.id[: 2 * ORIGIN_TAG_HEX] for row in open_rows]
    if sum(tag[:ORIGIN_TAG_HEX] == address for tag in tags) >= MAX_OPEN_PER_ADDRESS:
        raise ApiError(
            429,
            "too_many_applications",
            f"{MAX_OPEN_PER_ADDRESS} applications from this address are open already; apply "
            "again once they are decided",
        )
    if sum(tag[ORIGIN_TAG_HEX:] == network for tag in tags) >= MAX_OPEN_PER_NETWORK:
        raise ApiError(
            429,
            "too_many_applications",
            f"{MAX_OPEN_PER_NETWORK} applications from this network are open already; apply "
            "again once they are decided",
        )


@router.post("/applications", response_model=ApplicationCreated, status_code=201)
def apply(
    body: ApplicationIn, request: Request, node: NodeDep, session: SessionDep
) -> ApplicationCreated:
    """Apply to join the consortium (no token). Keep the tracking secret: it is shown once."""
    address = to_checksum_address(body.admin_address)
    cutoff = _expiry_cutoff(node)
    open_rows, expired = [], 0
    for row in session.exec(
        select(OnboardingApplication).where(col(OnboardingApplication.status).in_(OPEN))
    ):
        if as_utc(row.submitted_at) >= cutoff:
            open_rows.append(row)
        else:  # kept as expired: the next application reads only the open ones again
            row.status, expired = "expired", expired + 1
            session.add(row)
    if expired:
        session.commit()  # even if this application is then refused
    host = request.client.host if request.client else ""
    tags = origin_tags(host, origin_key(node.settings.keystore_dir))
    _check_room(open_rows, *tags)
    for row in open_rows:
        if row.org_name == body.org_name or row.admin_address == address:
            raise ApiError(
                409, "duplicate_application", "an open application uses this name or account"
            )
    _check_free_on_chain(node, body.org_name, address)
    secret = secrets.token_urlsafe(32)
    row = OnboardingApplication(
        id="".join(tags) + secrets.token_hex(16 - ORIGIN_TAG_HEX),  # 32 hex digits
        secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        org_name=body.org_name,
        contact_name=body.contact_name,
        contact_email=body.contact_email,
        admin_address=address,
        endpoint=body.node_endpoint,
        node_key="0x" + body.node_public_key.removeprefix("0x").lower(),
        roles=int(_roles(body.requested_roles)),
        status="submitted",
    )
    session.add(row)
    session.commit()
    return ApplicationCreated(application_id=row.id, tracking_secret=secret, status=row.status)


@router.get("/applications/{application_id}", response_model=ApplicationStatus)
def track(
    application_id: ApplicationId,
    node: NodeDep,
    session: SessionDep,
    tracking_secret: Annotated[str, Header(alias=SECRET_HEADER, min_length=1, max_length=200)],
) -> ApplicationStatus:
    """An application's progress, for the applicant holding its tracking secret (no token)."""
    row = session.get(OnboardingApplication, application_id)
    offered = hashlib.sha256(tracking_secret.encode()).hexdigest()
    if row is None or not hmac.compare_digest(row.secret_hash, offered):
        raise ApiError(404, "not_found", f"no application {application_id} with this secret")
    return _status(row, _expiry_cutoff(node))


@router.get("/applications", response_model=list[ApplicationOut])
def list_applications(
    _reviewer: Reviewer,
    node: NodeDep,
    session: SessionDep,
    status: Annotated[ShownStatus | None, Query()] = None,
) -> list[ApplicationOut]:
    """Applications, oldest first (consortium admin)."""
    query = select(OnboardingApplication).order_by(col(OnboardingApplication.submitted_at))
    if status in ("approved", "rejected"):
        query = query.where(OnboardingApplication.status == status)
    elif status is not None:  # open or expired (stored so, or open and too old): told by age
        stored = (*OPEN, "expired") if status == "expired" else (status,)
        query = query.where(col(OnboardingApplication.status).in_(stored))
    cutoff = _expiry_cutoff(node)
    rows = session.exec(query)
    return [_out(row, cutoff) for row in rows if status in (None, _shown_status(row, cutoff))]


def _load_open(node: NodeContext, session: Session, application_id: str) -> OnboardingApplication:
    """The application, if it is open (submitted or under review) and has not expired."""
    row = _load(session, application_id)
    shown = _shown_status(row, _expiry_cutoff(node))
    if shown not in OPEN:
        raise ApiError(409, "wrong_status", f"the application is already {shown}")
    return row


@router.post("/applications/{application_id}/review", response_model=ApplicationOut)
def start_review(
    application_id: ApplicationId, reviewer: Reviewer, node: NodeDep, session: SessionDep
) -> ApplicationOut:
    """Mark an application as under review (consortium admin)."""
    row = _load_open(node, session, application_id)
    if row.status != "submitted":
        raise ApiError(409, "wrong_status", f"the application is {row.status}")
    row.status, row.review_started_at, row.reviewer = "under_review", utc_now(), reviewer.address
    session.add(row)
    session.commit()
    return _out(row, _expiry_cutoff(node))


@router.post("/applications/{application_id}/reject", response_model=ApplicationOut)
def reject(
    application_id: ApplicationId,
    body: RejectIn,
    reviewer: Reviewer,
    node: NodeDep,
    session: SessionDep,
) -> ApplicationOut:
    """Reject an open application with a reason the applicant will see (consortium admin)."""
    row = _load_open(node, session, application_id)
    now = utc_now()
    row.review_started_at = row.review_started_at or now
    row.status, row.decided_at, row.reason = "rejected", now, body.reason
    row.reviewer = reviewer.address
    session.add(row)
    session.commit()
    return _out(row, _expiry_cutoff(node))


def _calldata(node: NodeContext, row: OnboardingApplication, org_id: int) -> list[UnsignedTx]:
    contract = node.ledger.orgs.contract
    node_key = bytes.fromhex(row.node_key[2:])
    register = contract.encode_abi(
        "registerOrg", args=[row.org_name, row.admin_address, row.endpoint, node_key]
    )
    calls = [UnsignedTx(function="registerOrg", to=contract.address, data=register)]
    extra = row.roles & ~int(Role.ORG_ADMIN)
    if extra:
        grant = contract.encode_abi("grantRoles", args=[org_id, row.admin_address, extra])
        calls.append(UnsignedTx(function="grantRoles", to=contract.address, data=grant))
    return calls


def _open_for_decision(
    node: NodeContext, session: Session, application_id: str
) -> OnboardingApplication:
    row = _load_open(node, session, application_id)
    _check_free_on_chain(node, row.org_name, row.admin_address)
    return row


@router.get("/applications/{application_id}/transactions", response_model=ApprovalTemplate)
def approval_transactions(
    application_id: ApplicationId, _reviewer: Reviewer, node: NodeDep, session: SessionDep
) -> ApprovalTemplate:
    """The unsigned transactions approving this application (non-custodial consortium admin):
    sign them in order with the admin's next nonces and post them to ``.../approve``."""
    row = _open_for_decision(node, session, application_id)
    org_id = node.ledger.orgs.org_count() + 1
    return ApprovalTemplate(
        chain_id=node.ledger.client.chain_id,
        expected_org_id=org_id,
        transactions=_calldata(node, row, org_id),
    )


def _checked(reviewer: ApiUser, raw: bytes, expected: UnsignedTx) -> bytes:
    """The calldata of a signed transaction, if the reviewer signed exactly ``expected``."""
    target, data = _target_and_data(raw)
    try:
        sender = Account.recover_transaction(raw)
    except Exception as exc:  # eth-account raises several types for bad signatures
        raise ApiError(400, "invalid_transaction", f"cannot recover the signer: {exc}") from exc
    if sender.lower() != reviewer.address.lower():
        raise ApiError(403, "forbidden", f"signed by {sender}, not by the caller's account")
    if target.hex().lower() != expected.to[2:].lower() or bytes(data) != HexBytes(expected.data):
        raise ApiError(
            400,
            "unexpected_transaction",
            f"the {expected.function} transaction must carry exactly the calldata of "
            "GET .../transactions (the next org id may have moved on: fetch it again)",
        )
    return bytes(data)


def _relay(node: NodeContext, reviewer: ApiUser, raw: bytes, expected: UnsignedTx) -> str:
    """Pre-flight and send one checked transaction; its hash once mined."""
    node.ledger.client.preflight_raw(
        reviewer.address, expected.to, _checked(reviewer, raw, expected)
    )
    receipt = node.ledger.client.wait(
        SentTransaction(HexBytes(_broadcast(node, raw)), HexBytes(raw), 0.0)
    )
    if receipt["status"] != 1:
        raise ApiError(409, "reverted", f"the {expected.function} transaction reverted")
    return str(receipt["transactionHash"].to_0x_hex())


@router.post("/applications/{application_id}/approve", response_model=ApplicationOut)
def approve(
    application_id: ApplicationId,
    body: ApproveIn,
    reviewer: Reviewer,
    node: NodeDep,
    session: SessionDep,
) -> ApplicationOut:
    """Approve: register the organisation on chain with its node and grant the requested roles,
    signed by the node with the admin's key (custodial) or relayed as signed by the admin."""
    row = _open_for_decision(node, session, application_id)
    orgs = node.ledger.orgs
    expected_org_id = orgs.org_count() + 1
    calls = _calldata(node, row, expected_org_id)
    tx_hashes: list[str] = []
    if body.signed_transactions is None:
        ledger = node.ledger_for(reviewer.address)  # KeystoreError: 403 not_custodial
        contract = ledger.orgs.contract
        node_key = bytes.fromhex(row.node_key[2:])
        receipt = ledger.client.transact(
            contract.functions.registerOrg(row.org_name, row.admin_address, row.endpoint, node_key)
        )
        tx_hashes.append(receipt["transactionHash"].to_0x_hex())
        (registered,) = ledger.orgs.events(receipt, "OrgRegistered")
        org_id = int(registered["args"]["orgId"])
        extra = row.roles & ~int(Role.ORG_ADMIN)
        if extra:
            receipt = ledger.client.transact(
                contract.functions.grantRoles(org_id, row.admin_address, extra)
            )
            tx_hashes.append(receipt["transactionHash"].to_0x_hex())
    else:
        if len(body.signed_transactions) != len(calls):
            wanted = " then ".join(call.function for call in calls)
            raise ApiError(400, "invalid_transaction", f"this approval needs {wanted}, signed")
        signed = [bytes(HexBytes(raw)) for raw in body.signed_transactions]
        for raw, expected in zip(signed, calls, strict=True):
            _checked(reviewer, raw, expected)  # all of them, before anything is sent
        for raw, expected in zip(signed, calls, strict=True):
            tx_hashes.append(_relay(node, reviewer, bytes(HexBytes(raw)), expected))
        org_id = expected_org_id
    org = orgs.get_org(org_id)
    if org.status is not OrgStatus.ACTIVE or org.admin.lower() != row.admin_address.lower():
        raise ApiError(409, "not_registered", f"org {org_id} on chain is not this application's")
    now = datetime.now(UTC)
    row.review_started_at = row.review_started_at or now
    row.status, row.decided_at, row.org_id = "approved", now, org_id
    row.tx_hashes, row.reviewer = tx_hashes, reviewer.address
    session.add(row)
    session.commit()
    return _out(row, _expiry_cutoff(node))
