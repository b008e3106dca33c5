"""Two-party ECDH-PSI over Curve25519 (X25519), semi-honest.

Construction: Meadows (1986) / Huberman, Franklin and Hogg (1999), the Diffie-Hellman PSI used
for instance by SecretFlow's ECDH-PSI with Curve25519. Each party draws a secret X25519 scalar
(``a`` for the requester, ``b`` for the provider) from :mod:`secrets`. An item ``x`` is hashed to
the prime-order subgroup of Curve25519, ``H(x)`` (:mod:`privledger.protocols.hash_to_curve`:
RFC 9380 ``hash_to_curve`` with the suite ``curve25519_XMD:SHA-512_ELL2_RO_``; the
u-coordinate), and "encrypted" as ``X25519(a, H(x))``. Because ``X25519(a, X25519(b, u)) ==
X25519(b, X25519(a, u))``, an item held by both parties ends up as the same doubly-encrypted
32-byte value on both sides, and nothing else matches.

X25519 is libsodium's ``crypto_scalarmult`` (through PyNaCl; RFC 7748, the same function as
``cryptography``'s X25519, without a key object per call). It releases the GIL, and so do the
hash's exponentiations, so large sets are blinded by a pool of threads: no worker processes to
start, no copies of the points between processes. (An X25519 costs ~31 us of CPU on the 2-core
test machine; libsodium's ``crypto_scalarmult_ed25519_noclamp`` on the Edwards form ~100 us.)

Group. Clamped scalars are multiples of 8, so a point of the prime-order subgroup stays in it:
every value either party sends is a uniformly distributed element of the group of prime order
``l`` (as a u-coordinate). Version 1 hashed items to arbitrary 32-byte u-coordinates, which lie
on the curve or on its twist; blinding keeps that bit, and the peer read it for every item
(``tests/privacy/test_prime_order_group.py`` attacks it). Version 2 hashed to the same group
through edwards25519 (libsodium's map, with signs of its own, ~65 us per item); version 3
computes the RFC's curve25519 suite exactly (~37 us); the versions' hashes differ, so they do
not interoperate. A small-order point *received* from the peer is refused with
:class:`ChannelError` (libsodium returns all zeros). Two distinct items collide only with
negligible probability (~n^2 2^-252).

Message sequence (``R`` = requester with set X, ``P`` = provider with set Y; duplicates are
removed first; each party shuffles its own set with :class:`random.SystemRandom`)::

    1. side a -> side b   header (JSON: protocol, version, role, reveal_to_provider, size)
    2. side b -> side a   header; both ends refuse a mismatch with PsiHandshakeError
    3. R -> P             A  = [X25519(a, H(x)) for x in shuffled X]
    4. P -> R             B  = [X25519(b, H(y)) for y in shuffled Y]
    5. P -> R             AB = [X25519(b, A_i) for A_i in A], in the order of A
    6. R -> P             BA = [X25519(a, B_j) for B_j in B], in the order of B
                          (only with reveal_to_provider=True)

R outputs the x whose AB entry is among the BA values; with ``reveal_to_provider`` P outputs the
y whose BA entry is among the AB values. Both parties compute their first layer
concurrently; R computes BA while P computes AB. The protocol is turn-based, so the channel's
transcript hash is equal on both ends.

Cardinality phase (``min_result`` given, by both parties; the protocol name in the header says
so, so a party running without it is refused at the handshake): R sends BA -- shuffled unless
``reveal_to_provider`` -- *before* P sends AB (messages 6, then 5). P counts the distinct values
common to AB and BA, which is |X ∩ Y| even for a requester that deviates (a BA value matches an
AB value only for an item of Y the requester put in A, i.e. one it learns), and sends AB only
if the count reaches its ``min_result``; otherwise it refuses with :class:`PsiResultTooSmall`
and R learns nothing beyond |Y|. This lets the provider, not the requester, enforce a minimum
result size; the price is that P learns |X ∩ Y|.

Size only (:func:`run_psi_size`, its own protocol name in the header): the cardinality phase, after
which P sends the count |X ∩ Y| (8 bytes, big-endian) instead of AB, when it reaches P's
``min_result``. Both parties learn |X ∩ Y| and the peer's set size, and nothing of the items:
R never receives AB, so it cannot tell which of its items matched.

Security model: semi-honest (honest-but-curious) parties; security rests on the decisional
Diffie-Hellman assumption in the prime-order subgroup of Curve25519 with ``H`` modelled as a
random oracle.
Scalars are fresh per run, so values from different runs cannot be linked.
It is not secure against a malicious peer (e.g. one that lies about its set or its results).

Leakage -- what each side learns:

- requester: the intersection (its own matching items) and the provider's set size |Y| (after
  de-duplication); nothing about the provider's other items.
- provider: the requester's set size |X| (after de-duplication); with ``reveal_to_provider`` also
  the intersection (its own matching items); with the cardinality phase its size |X ∩ Y|;
  otherwise nothing else, not even its size.
- both: that the peer followed this protocol version and mode (the header is sent in clear over
  the channel; the transport encrypts it on the wire).
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from types import TracebackType
from typing import Self, TypeVar

import numpy as np
from nacl.bindings import crypto_scalarmult
from nacl.exceptions import CryptoError

from privledger.protocols.channel import Channel, ChannelError, recv_records, send_records
from privledger.protocols.hash_to_curve import hash_to_u
from privledger.protocols.psi.common import (
    Header,
    PsiResult,
    Role,
    check_role,
    distinct_items,
    handshake,
)

logger = logging.getLogger(__name__)


PROTOCOL = "privledger/ecdh-psi-x25519"
CARDINALITY_PROTOCOL = PROTOCOL + "+cardinality"  # the header's name with the cardinality phase
SIZE_PROTOCOL = PROTOCOL + "+size-only"  # the cardinality phase, then the count instead of AB
COUNT_BYTES = 8
VERSION = 3  # v3: RFC 9380 curve25519 suite (v2: edwards25519 via libsodium; v1: curve or twist)
POINT_BYTES = 32

_HASH_DST = b"privledger/ecdh-psi/v3-with-curve25519_XMD:SHA-512_ELL2_RO_"
# Items per pool task: ~0.3 s of hashing and X25519 (~0.13 s of X25519 alone), small enough to
# balance the threads, large enough that a batch's one inversion and one call for all its
# exponentiations pay off.
_CHUNK = 1 << 12

_Chunk = TypeVar("_Chunk", bytes, list[bytes])


def run_psi(
    channel: Channel,
    items: Sequence[bytes],
    *,
    role: Role,
    reveal_to_provider: bool = False,
    workers: int | None = None,
    timeout: float | None = None,
    min_result: int | None = None,
) -> PsiResult:
    """Run semi-honest ECDH-PSI with the peer at the other end of ``channel``.

    ``items`` may contain duplicates; they are removed first. ``workers`` is the number of
    threads for the hashing and X25519 work on sets of more than one chunk (default
    ``os.cpu_count()``; 1 does all work in the calling thread). ``timeout`` bounds each wait for
    a peer message in seconds, and a wait includes the peer's computation (a hash and two X25519
    per item; ~37 and ~31 us of CPU each on the 2-core test machine). ``min_result`` (both
    parties, or neither) runs the cardinality phase, in which the provider refuses with
    :class:`PsiResultTooSmall` an intersection smaller than its ``min_result`` before it sends
    what the requester needs to find it.
    """
    check_role(role)
    threads = _resolve_workers(workers)
    started = time.perf_counter()
    own = _dedup_shuffled(items)
    name = PROTOCOL if min_result is None else CARDINALITY_PROTOCOL
    peer_size = handshake(
        channel, Header(name, VERSION, role, reveal_to_provider, len(own)), timeout
    )
    with _Blinder(threads) as blinder:
        session = _Session(channel, blinder, own, peer_size, reveal_to_provider, timeout)
        if min_result is None:
            run = _run_requester if role == "requester" else _run_provider
            result = run(session, blinder.blind_items(own))
        elif role == "requester":
            result = _requester_counted(session, blinder.blind_items(own))
        else:
            result = _provider_counting(session, blinder.blind_items(own), min_result)
    logger.info(
        "ecdh-psi %s: %d items, peer %d, output %s (%d items), %.2f s",
        role,
        len(own),
        peer_size,
        result.learned_output,
        len(result.intersection),
        time.perf_counter() - started,
    )
    return result


def run_psi_size(
    channel: Channel,
    items: Sequence[bytes],
    *,
    role: Role,
    min_result: int,
    workers: int | None = None,
    timeout: float | None = None,
) -> int:
    """Size-only ECDH-PSI: both parties learn |X ∩ Y| (see the module docs), the provider
    refusing with :class:`PsiResultTooSmall` a size below its ``min_result``."""
    check_role(role)
    own = _dedup_shuffled(items)
    peer_size = handshake(channel, Header(SIZE_PROTOCOL, VERSION, role, False, len(own)), timeout)
    with _Blinder(_resolve_workers(workers)) as blinder:
        session = _Session(channel, blinder, own, peer_size, False, timeout)
        if role == "provider":
            _, _, size = _provider_counts(session, blinder.blind_items(own), min_result)
            channel.delivering()  # the count is the requester's output
            channel.send(size.to_bytes(COUNT_BYTES, "big"))
            return size
        _requester_counts(session, blinder.blind_items(own))
        count = channel.recv(timeout)
    if len(count) != COUNT_BYTES:
        raise ChannelError(f"a count is {COUNT_BYTES} bytes, not {len(count)}")
    size = int.from_bytes(count, "big")
    if size > min(len(own), peer_size):
        raise ChannelError(f"a count of {size} exceeds both set sizes")
    return size


@dataclass(frozen=True)
class _Session:
    channel: Channel
    blinder: _Blinder
    own: list[bytes]
    peer_size: int
    reveal_to_provider: bool
    timeout: float | None

    def send_points(self, points: bytes) -> None:
        records = np.frombuffer(points, dtype=np.uint8).reshape(-1, POINT_BYTES)
        send_records(self.channel, records)

    def recv_points(self, count: int) -> bytes:
        return recv_records(self.channel, POINT_BYTES, self.timeout, count=count).tobytes()

    def output(self, own_double: bytes, peer_double: bytes) -> PsiResult:
        peer_set = set(_split_points(peer_double))
        pairs = zip(self.own, _split_points(own_double), strict=True)
        return PsiResult(sorted(x for x, p in pairs if p in peer_set), True, self.peer_size)


def _run_requester(session: _Session, own_blinded: bytes) -> PsiResult:
    session.send_points(own_blinded)
    peer_double = session.blinder.reblind(session.recv_points(session.peer_size))
    own_double = session.recv_points(len(session.own))
    if session.reveal_to_provider:
        session.send_points(peer_double)
    return session.output(own_double, peer_double)


def _run_provider(session: _Session, own_blinded: bytes) -> PsiResult:
    peer_blinded = session.recv_points(session.peer_size)
    session.send_points(own_blinded)
    peer_double = session.blinder.reblind(peer_blinded)
    session.channel.delivering()  # AB gives the requester its output
    session.send_points(peer_double)
    if not session.reveal_to_provider:
        return PsiResult([], False, session.peer_size)
    return session.output(session.recv_points(len(session.own)), peer_double)


class PsiResultTooSmall(ChannelError):
    """The provider refuses to release an intersection smaller than its minimum."""

    def __init__(self, size: int, least: int) -> None:
        super().__init__(f"the intersection has {size} items, fewer than {least}")
        self.size = size
        self.least = least


def _requester_counted(session: _Session, own_blinded: bytes) -> PsiResult:
    """The requester's side with the cardinality phase: BA goes before AB comes."""
    peer_double = _requester_counts(session, own_blinded)
    return session.output(session.recv_points(len(session.own)), peer_double)


def _requester_counts(session: _Session, own_blinded: bytes) -> bytes:
    """The requester's part of the cardinality phase (A out, B in, BA out); BA in B's order."""
    session.send_points(own_blinded)
    peer_double = session.blinder.reblind(session.recv_points(session.peer_size))
    if session.reveal_to_provider:
        session.send_points(peer_double)  # in the order of B: the provider learns its matches
    else:
        shuffled = list(_split_points(peer_double))
        random.SystemRandom().shuffle(shuffled)  # the provider learns how many, not which
        session.send_points(b"".join(shuffled))
    return peer_double


def _provider_counting(session: _Session, own_blinded: bytes, min_result: int) -> PsiResult:
    """The provider's side with the cardinality phase: AB goes only over ``min_result``."""
    peer_double, own_double, _ = _provider_counts(session, own_blinded, min_result)
    session.channel.delivering()  # AB gives the requester its output
    session.send_points(peer_double)
    if not session.reveal_to_provider:
        return PsiResult([], False, session.peer_size)
    return session.output(own_double, peer_double)


def _provider_counts(
    session: _Session, own_blinded: bytes, min_result: int
) -> tuple[bytes, bytes, int]:
    """The provider's part of the cardinality phase (A in, B out, BA in): AB, BA and
    |X ∩ Y|, refused with :class:`PsiResultTooSmall` below ``min_result``."""
    peer_blinded = session.recv_points(session.peer_size)
    session.send_points(own_blinded)
    # AB in a second thread while this one waits for BA: a provider's node holds what it sends
    # until it next receives (privledger.node.release), so computing AB first would keep B --
    # which the requester needs for BA -- until AB is done, and the two would not overlap
    with ThreadPoolExecutor(1, thread_name_prefix="ecdh-ab") as aside:
        reblinding = aside.submit(session.blinder.reblind, peer_blinded)
        own_double = session.recv_points(len(session.own))
        peer_double = reblinding.result()
    size = len(set(_split_points(peer_double)) & set(_split_points(own_double)))
    if size < min_result:
        raise PsiResultTooSmall(size, min_result)
    return peer_double, own_double, size


def _split_points(points: bytes) -> Iterator[bytes]:
    return (points[i : i + POINT_BYTES] for i in range(0, len(points), POINT_BYTES))


def _dedup_shuffled(items: Sequence[bytes]) -> list[bytes]:
    own = distinct_items(items)
    random.SystemRandom().shuffle(own)
    return own


def _resolve_workers(workers: int | None) -> int:
    resolved = (os.cpu_count() or 1) if workers is None else workers
    if resolved < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    return resolved


# --- hashing and X25519 work, in the calling thread or over a thread pool -----------------


def hash_items(items: Sequence[bytes]) -> list[bytes]:
    """The public hash of each item: an X25519 u-coordinate of the prime-order subgroup."""
    return hash_to_u(items, _HASH_DST)


def _blind_items(private: bytes, items: list[bytes]) -> bytes:
    """``X25519(k, H(x))`` for each item, concatenated."""
    try:
        return b"".join(crypto_scalarmult(private, u) for u in hash_items(items))
    except (CryptoError, ValueError):  # H(x) is the identity: probability ~2^-252 per item
        raise ValueError("an item hashes to the identity point") from None


def _reblind(private: bytes, points: bytes) -> bytes:
    """``X25519(k, p)`` for each 32-byte point received from the peer, concatenated."""
    try:
        return b"".join(crypto_scalarmult(private, p) for p in _split_points(points))
    except CryptoError:
        raise ChannelError("peer sent a small-order point") from None


class _Blinder:
    """Holds one party's secret scalar and applies it, over a thread pool for large inputs."""

    def __init__(self, workers: int) -> None:
        self._private = secrets.token_bytes(32)
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None

    def blind_items(self, items: list[bytes]) -> bytes:
        return self._map(_blind_items, items, step=1)

    def reblind(self, points: bytes) -> bytes:
        return self._map(_reblind, points, step=POINT_BYTES)

    def _map(self, fn: Callable[[bytes, _Chunk], bytes], data: _Chunk, *, step: int) -> bytes:
        """``fn(key, data)`` where an element is ``step`` units of ``data``; chunked if large."""
        size = _CHUNK * step
        if self._workers == 1 or len(data) <= size:
            return fn(self._private, data)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ecdh-psi")
        chunks = [data[lo : lo + size] for lo in range(0, len(data), size)]
        return b"".join(self._pool.map(fn, repeat(self._private), chunks))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
