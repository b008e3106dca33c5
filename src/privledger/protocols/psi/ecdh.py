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
so, so a party running without it is refused at the handshake). A requester that deviates must
not be able to make the provider count more than |X ∩ Y| (version 3 counted the distinct values
common to AB and a shuffled BA: a requester that put one guessed item into A under m extra
exponents and answered m positions of B with them made one common item count m times,
``tests/security/test_ecdh_cardinality_inflation.py``). So every value of B is bound to its
position::

    3. R -> P   A  = [X25519(a, H(x)) for x in shuffled X]
    4. P -> R   B  = [X25519(k_j, H(y_j)) for y_j in shuffled Y], a fresh key k_j per position
    6. R -> P   BA = [X25519(a, B_j) for B_j in B], in the order of B
    7. P -> R   the matches: a bitmap over A (full output) or the count |X ∩ Y| (size only)

P draws for each position j a key pair with ``k_j w_j = b`` (mod the group order, its one
scalar ``b``), computes ``D_j = X25519(w_j, BA_j)`` -- ``H(y_j)^(ab)`` for an honest requester --
and ``AB_i = X25519(b, A_i)``, and counts the distinct values common to D and AB. Because ``w_j``
is secret and differs per position, a value the requester derives from ``B_g`` and places at
position j != g unblinds to a random point, and a value placed at position j matches an entry
``AB_i`` only if ``A_i`` is ``H(y_j)`` to a power the requester knows: it put ``y_j`` itself
into A, before it saw B. Each position, i.e. each of P's items, counts at most once, and A must
hold distinct values (a repeated point is refused). P refuses with :class:`PsiResultTooSmall` a
count below its ``min_result``; otherwise it sends the bitmap of the entries of A that matched,
not AB: the requester learns exactly the matches P counted. What the requester sends that is
not a point of the prime-order subgroup cannot match: a small-order point is refused, a point
with a small-order component loses it to the clamped (multiple of 8) scalars, a point of the
twist stays on the twist, where no value of P's is.

The price: P learns *which* of its items are in the intersection (the positions j that
matched), not only how many -- with the full output and with size only, whatever
``reveal_to_provider`` says (which only decides whether P's result lists them). It still learns
nothing of the requester's other items. A refused requester learns only |Y|.

Size only (:func:`run_psi_size`, its own protocol name in the header): the cardinality phase,
after which P sends the count |X ∩ Y| (8 bytes, big-endian) instead of the bitmap, when it
reaches P's ``min_result``. The requester learns |X ∩ Y| and the peer's set size, and nothing of
the items; P learns which of its items matched, as above.

Security model: semi-honest (honest-but-curious) parties; security rests on the decisional
Diffie-Hellman assumption in the prime-order subgroup of Curve25519 with ``H`` modelled as a
random oracle. Scalars are fresh per run, so values from different runs cannot be linked. It is
not secure against a malicious peer (e.g. one that lies about its set or its results), except
for the one property above: whatever the requester sends, the provider's count does not exceed
the number of its items the requester put into A, and the requester learns no more matches
than were counted. ``min_result`` bounds one run: a requester that knows ``min_result - 1`` of
the provider's items (from an earlier released run, say) pads a later run with them and learns
whether any one further item is held.

Leakage -- what each side learns:

- requester: the intersection (its own matching items; only its size with size only) and the
  provider's set size |Y| (after de-duplication); nothing about the provider's other items.
- provider: the requester's set size |X| (after de-duplication); with ``reveal_to_provider`` or
  the cardinality phase also the intersection (its own matching items); otherwise nothing else,
  not even its size.
- both: that the peer followed this protocol version and mode (the header is sent in clear over
  the channel; the transport encrypts it on the wire).
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
# v4: the cardinality phase binds B to its positions and answers with the matches, not AB;
# v3: RFC 9380 curve25519 suite (v2: edwards25519 via libsodium; v1: curve or twist)
VERSION = 4
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
    parties, or neither) runs the cardinality phase, in which the provider counts the matches,
    refuses with :class:`PsiResultTooSmall` fewer than its ``min_result`` and otherwise tells
    the requester which of its items matched.
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
            result = _provider_counting(session, min_result)
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
            size = len(_provider_counts(session, min_result))
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
    """The requester's side with the cardinality phase: BA goes, the matches come."""
    _requester_counts(session, own_blinded)
    size, expected = len(session.own), (len(session.own) + 7) // 8
    packed = np.frombuffer(session.channel.recv(session.timeout), dtype=np.uint8)
    if len(packed) != expected:
        raise ChannelError(f"a bitmap of {size} matches is {expected} bytes, not {len(packed)}")
    bits = np.unpackbits(packed)
    if bits[size:].any() or np.count_nonzero(bits) > session.peer_size:
        raise ChannelError("the matches name items the bitmap does not cover or exceed |Y|")
    matched = sorted(x for x, hit in zip(session.own, bits[:size], strict=True) if hit)
    return PsiResult(matched, True, session.peer_size)


def _requester_counts(session: _Session, own_blinded: bytes) -> None:
    """The requester's part of the cardinality phase: A out, B in, BA out in B's order (each
    of B's positions is blinded with a key of its own, so the order is not the requester's
    to choose: the provider learns which of its items matched)."""
    session.send_points(own_blinded)
    session.send_points(session.blinder.reblind(session.recv_points(session.peer_size)))


def _provider_counting(session: _Session, min_result: int) -> PsiResult:
    """The provider's side with the cardinality phase: the matches go only over
    ``min_result``."""
    matches = _provider_counts(session, min_result)
    bits = np.zeros(session.peer_size, dtype=bool)
    bits[list(matches)] = True
    session.channel.delivering()  # the matches are the requester's output
    session.channel.send(np.packbits(bits).tobytes())
    if not session.reveal_to_provider:
        return PsiResult([], False, session.peer_size)
    return PsiResult(sorted(session.own[j] for j in matches.values()), True, session.peer_size)


def _provider_counts(session: _Session, min_result: int) -> dict[int, int]:
    """The provider's part of the cardinality phase (A in, B out, BA in): the matches, each
    entry of A that matched to the position of B it matched, refused with
    :class:`PsiResultTooSmall` when fewer than ``min_result``."""
    blinding, unblinding = session.blinder.position_keys(len(session.own))
    own_blinded = session.blinder.blind_each(blinding, session.own)
    peer_blinded = session.recv_points(session.peer_size)
    session.send_points(own_blinded)
    # AB in a second thread while this one waits for BA: a provider's node holds what it sends
    # until it next receives (privledger.node.release), so computing AB first would keep B --
    # which the requester needs for BA -- until AB is done, and the two would not overlap
    with ThreadPoolExecutor(1, thread_name_prefix="ecdh-ab") as aside:
        reblinding = aside.submit(session.blinder.reblind, peer_blinded)
        answered = session.recv_points(len(session.own))
        peer_double = reblinding.result()
    own_double = session.blinder.reblind_each(unblinding, answered)  # H(y_j)^(ab) if honest
    peer_index = {point: i for i, point in enumerate(_split_points(peer_double))}
    if len(peer_index) < session.peer_size:
        raise ChannelError("peer sent the same point twice")  # an honest A has distinct points
    matches: dict[int, int] = {}
    for position, point in enumerate(_split_points(own_double)):
        entry = peer_index.get(point)
        if entry is not None:
            matches.setdefault(entry, position)
    if len(matches) < min_result:
        raise PsiResultTooSmall(len(matches), min_result)
    return matches


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


def _blind_items(keys: Iterable[bytes], items: list[bytes]) -> bytes:
    """``X25519(k, H(x))`` for each item and its key, concatenated."""
    try:
        return b"".join(map(crypto_scalarmult, keys, hash_items(items)))
    except (CryptoError, ValueError):  # H(x) is the identity: probability ~2^-252 per item
        raise ValueError("an item hashes to the identity point") from None


def _reblind(keys: Iterable[bytes], points: bytes) -> bytes:
    """``X25519(k, p)`` for each 32-byte point received from the peer and its key, concatenated."""
    try:
        return b"".join(map(crypto_scalarmult, keys, _split_points(points)))
    except CryptoError:
        raise ChannelError("peer sent a small-order point") from None


# l, the prime order of the subgroup, and what RFC 7748's clamping makes of a key: 2^254 + 8m
_ORDER = 2**252 + 27742317777372353535851937790883648493
_TOP = 1 << 254
_EIGHTH = pow(8, -1, _ORDER)


def _scalar(key: bytes) -> int:
    """The scalar X25519 multiplies by for ``key``."""
    return (int.from_bytes(key, "little") & ((1 << 255) - 8)) | _TOP


def _key_of(scalar: int) -> bytes | None:
    """A key whose clamped scalar equals ``scalar`` modulo l, if one exists: clamped scalars
    are 2^254 + 8m with m < 2^251, about half the residues."""
    m = (scalar - _TOP) * _EIGHTH % _ORDER
    return (_TOP + 8 * m).to_bytes(32, "little") if m < 1 << 251 else None


def _inverses(values: list[int]) -> list[int]:
    """The inverses modulo l of nonzero ``values``, with one exponentiation (Montgomery's
    trick: a Python ``pow(v, -1, l)`` costs ~100 times a multiplication)."""
    prefix = [1]
    for value in values:
        prefix.append(prefix[-1] * value % _ORDER)
    inverse = pow(prefix[-1], -1, _ORDER)
    inverses = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        inverses[i] = inverse * prefix[i] % _ORDER
        inverse = inverse * values[i] % _ORDER
    return inverses


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

    def position_keys(self, count: int) -> tuple[list[bytes], list[bytes]]:
        """``count`` pairs of fresh keys ``(k_j, w_j)`` whose scalars multiply to this
        blinder's modulo l: blinding with ``k_j`` and then ``w_j`` is blinding with this
        blinder's key, for position j only. (~half the draws give no key ``k_j``: redrawn.)"""
        target = _scalar(self._private)
        blinding, unblinding = [b""] * count, [b""] * count
        pending = list(range(count))
        while pending:
            drawn = secrets.token_bytes(32 * len(pending))
            keys = [drawn[at : at + 32] for at in range(0, len(drawn), 32)]
            inverses = _inverses([_scalar(key) for key in keys])
            missing = []
            for position, key, inverse in zip(pending, keys, inverses, strict=True):
                blinding_key = _key_of(target * inverse)
                if blinding_key is None:
                    missing.append(position)
                else:
                    blinding[position], unblinding[position] = blinding_key, key
            pending = missing
        return blinding, unblinding

    def blind_each(self, keys: list[bytes], items: list[bytes]) -> bytes:
        return self._map(_blind_items, items, step=1, keys=keys)

    def reblind_each(self, keys: list[bytes], points: bytes) -> bytes:
        return self._map(_reblind, points, step=POINT_BYTES, keys=keys)

    def _map(
        self,
        fn: Callable[[Iterable[bytes], _Chunk], bytes],
        data: _Chunk,
        *,
        step: int,
        keys: list[bytes] | None = None,
    ) -> bytes:
        """``fn(keys, data)`` where an element is ``step`` units of ``data`` and ``keys`` are
        one per element (this blinder's key for all if none); chunked if large."""
        size = _CHUNK * step

        def part(lo: int) -> bytes:
            first = lo // step
            own = repeat(self._private) if keys is None else keys[first : first + _CHUNK]
            return fn(own, data[lo : lo + size])

        starts = range(0, len(data), size)
        if self._workers == 1 or len(data) <= size:
            return b"".join(map(part, starts))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="ecdh-psi")
        return b"".join(self._pool.map(part, starts))

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
