"""Signed node-to-node requests: the calling node proves which organisation it acts for.

A signed request carries ``x-source-node-id`` (the caller's organisation id on chain),
``x-target-node-id`` (the organisation it calls; ``0`` for "whichever node serves this path"),
``x-nonce``, ``x-timestamp`` (milliseconds) and ``x-auth-sign``: an EIP-191 signature by the
calling node's account over the lines ``scheme``, ``path``, ``source``, ``target``, ``nonce``,
``timestamp`` and the hex ``sha256`` of the body, joined by ``\\n``.
``path`` is the route's path on the receiving node without a tenant host's ``/t/<org>`` mount, so
a call into a tenant verifies as it was signed.

Two schemes use these headers. ``privledger-peer-v1`` signs the GETs of the ``/api/v1/peer/``
routes (task specs, service terms). ``privledger-frames-v1`` signs the POST that opens a stream of
channel frames: its body is a stream the sender is still writing, so the signature covers the
headers and the empty body's digest, and the receiver instead refuses every frame of the stream
whose header names a sender other than the signing organisation (``node.wires.receive_stream``).
An outsider can thus queue no frame at all, and a node only frames in its own name, on routes of
tasks its organisation takes part in.

The receiver accepts it only if the signer holds, on chain now, the operator role of the active
source organisation (a node's account is its organisation's operator), the target is its own
organisation (or ``0`` where the scheme allows it), the timestamp is within five minutes and the
nonce is new. The chain stands in for the certificates nodes would otherwise exchange. The ids and
the timestamp are ASCII digits, and an id is below 2^63 as everywhere in the API: anyone can sign
a call, so a value the chain could not encode is refused (401) before it is asked.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Mapping
from dataclasses import dataclass

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from privledger.evm.contracts import OrgRegistry, Role
from privledger.node.wires import FRAMES_PATH

CLOCK_SKEW_MS = 300_000
PEER_SCHEME = "privledger-peer-v1"  # GETs of /api/v1/peer/ routes (task specs, service terms)
FRAMES_SCHEME = "privledger-frames-v1"  # the POST of a frame stream (the body is not covered)
PEER_ROUTES = "/api/v1/peer/"
ANY_NODE = 0
HEADERS = ("x-source-node-id", "x-target-node-id", "x-nonce", "x-timestamp", "x-auth-sign")
MAX_NUMBER = 2**63 - 1  # the largest id or timestamp: an org id is below 2^63 (api.deps.OrgId)


@dataclass
class PeerAuthError(Exception):
    """A signed call that cannot be accepted: 401 (not proven) or 403 (proven, not allowed)."""

    status: int
    message: str

    def __str__(self) -> str:
        return self.message


def call_message(
    scheme: str, path: str, source: int, target: int, nonce: str, timestamp: int, body: bytes
) -> str:
    digest = hashlib.sha256(body).hexdigest()
    return f"{scheme}\n{path}\n{source}\n{target}\n{nonce}\n{timestamp}\n{digest}"


def signed_headers(
    account: LocalAccount, scheme: str, path: str, source: int, target: int, body: bytes
) -> dict[str, str]:
    """The headers that make a request to ``path`` a call signed by ``account`` for ``source``."""
    nonce, timestamp = secrets.token_hex(16), int(time.time() * 1000)
    message = call_message(scheme, path, source, target, nonce, timestamp, body)
    signature = account.sign_message(encode_defunct(text=message)).signature
    return {
        "x-source-node-id": str(source),
        "x-target-node-id": str(target),
        "x-nonce": nonce,
        "x-timestamp": str(timestamp),
        "x-auth-sign": "0x" + bytes(signature).hex(),
    }


class NonceCache:
    """Nonces seen within the accepted clock window; a repeat is a replay. Every nonce is kept for
    the same time, so they expire in the order they came: each call drops the expired ones from
    the front, never scanning those still kept (tens of thousands under a flood of calls)."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, nonce: str) -> bool:
        with self._lock:
            now = time.monotonic()
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            if nonce in self._seen:
                return False
            self._seen[nonce] = now + 2 * CLOCK_SKEW_MS / 1000
            return True


NONCES = NonceCache()  # one per process: nonces are 128 random bits, whichever tenant sees them


def verify_signed(
    orgs: OrgRegistry,
    own_org: int,
    *,
    scheme: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    any_target: bool = False,
) -> int:
    """The calling organisation of a signed call, or :class:`PeerAuthError`."""
    try:
        source = _number(headers, "x-source-node-id")
        target = _number(headers, "x-target-node-id")
        timestamp = _number(headers, "x-timestamp")
        nonce = headers["x-nonce"]
        signature = bytes.fromhex(headers["x-auth-sign"].removeprefix("0x"))
    except (KeyError, ValueError) as exc:
        raise PeerAuthError(401, f"a node-to-node call needs the signed headers: {exc}") from exc
    if target != own_org and not (any_target and target == ANY_NODE):
        raise PeerAuthError(403, f"this node is organisation {own_org}, not {target}")
    if abs(time.time() * 1000 - timestamp) > CLOCK_SKEW_MS:
        raise PeerAuthError(401, "x-timestamp is outside the accepted window")
    if not 16 <= len(nonce) <= 128:
        raise PeerAuthError(401, "x-nonce must be 16 to 128 characters")
    message = call_message(scheme, path, source, target, nonce, timestamp, body)
    try:
        signer = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception as exc:  # eth-account raises several types for malformed signatures
        raise PeerAuthError(401, f"x-auth-sign does not verify: {exc}") from exc
    if source <= 0 or not orgs.has_org_role(source, signer, Role.OPERATOR):
        raise PeerAuthError(403, f"{signer} is no operator of an active organisation {source}")
    if not NONCES.fresh(nonce):
        raise PeerAuthError(401, "x-nonce was used before (replay)")
    return source


def _number(headers: Mapping[str, str], name: str) -> int:
    """Header ``name`` as a whole number below 2^63 in ASCII digits, or ValueError."""
    text = headers[name]
    # str.isdigit() alone also takes superscripts and other scripts' digits, which int() refuses
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_NUMBER):
        raise ValueError(f"{name} is a whole number below 2^63")
    return int(text)


def peer_actor(org_id: int) -> str:
    """Who a verified signed call is from, as the audit log names it."""
    return f"peer org {org_id}"


class SignedPeerCalls(httpx.Auth):
    """Signs, for its organisation, every call a node makes to another node's peer routes: the
    GETs of ``/api/v1/peer/`` routes (task specs, service terms; :data:`PEER_SCHEME`, target
    :data:`ANY_NODE`: the path, a task id, already names what is asked for), so that the other
    node answers participants only; and the POST of each frame stream (:data:`FRAMES_SCHEME`,
    to the organisation the wire names in ``x-target-node-id``), so that the other node takes
    frames from no one but the node of the organisation they claim to come from."""

    def __init__(self, account: LocalAccount, org_id: int) -> None:
        self.account = account
        self.org_id = org_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path
        if PEER_ROUTES in path:
            route = path[path.index(PEER_ROUTES) :]  # without a tenant host's /t/<org> mount
            if request.method == "GET":
                request.headers.update(self._headers(PEER_SCHEME, route, ANY_NODE))
            elif request.method == "POST" and route == FRAMES_PATH:
                target = int(request.headers.get("x-target-node-id", ANY_NODE))
                request.headers.update(self._headers(FRAMES_SCHEME, route, target))
        yield request

    def _headers(self, scheme: str, route: str, target: int) -> dict[str, str]:
        return signed_headers(self.account, scheme, route, self.org_id, target, b"")
