"""Keyword PIR: a querier fetches the values of its keys from a holder's table, semi-honest.

The querier learns the value of each of its keys (or that the key is absent) and nothing about the
holder's other records; in the default ``"pir"`` mode the holder learns nothing about the keys.

Construction (our own composition of standard parts):

1. **OPRF.** The holder has an X25519 scalar ``k`` (fresh per table, from :mod:`secrets`). For a
   key ``x``: ``u(x)`` is ``x`` hashed to the prime-order subgroup of Curve25519
   (:mod:`privledger.protocols.hash_to_curve`: RFC 9380 ``hash_to_curve`` with the suite
   ``curve25519_XMD:SHA-512_ELL2_RO_``; the u-coordinate) and
   ``F(x) = SHA-256(DST_F || len(x) || x || X25519(k, u(x)))`` -- the 2HashDH OPRF of Jarecki,
   Kiayias and Krawczyk (ASIACRYPT 2014) in that group. The querier blinds ``a = X25519(r, u)``
   with a fresh clamped ``r``, the holder returns ``X25519(k, a)``, and the querier unblinds with
   a clamped scalar ``r'`` that is ``r^-1`` modulo the group order ``l = 2^252 + c``; ``r`` is
   redrawn until such an ``r'`` exists (probability about 1/2 per draw). Clamped scalars are
   multiples of 8, so every value stays in the prime-order subgroup and
   ``X25519(r', X25519(k, X25519(r, u))) = X25519(k, u)``. (Version 1 hashed keys to arbitrary
   u-coordinates, on the curve or on its twist; the blinded point kept that bit, and the holder
   halved its candidate keys with every query -- ``tests/privacy/test_prime_order_group.py``.
   Version 2 reached the same group through edwards25519 and libsodium's map; version 3
   computes the RFC's curve25519 suite exactly, and its hashes differ.)
   The holder evaluates ``F`` on all its keys offline (one X25519 per record, over a process
   pool).
2. **Layout.** A public 32-byte table seed ``t`` (fresh per table) fixes the bucket of a key,
   ``b(x) = (BLAKE2b-64_t(x) * B) >> 64`` (one hash function; the querier computes it without
   the holder), and a slot per record: ``tag || value xor pad`` where
   ``tag || pad = SHAKE-256(DST_S || t || F(x))`` (8-byte tag, pad as long as the value). Each of
   the ``B`` buckets holds ``c`` slots; unused slots are random bytes, and records sit at random
   positions in their bucket (a fresh permutation per bucket), so a bucket looks the same
   whatever it holds and a found record's slot says nothing about the holder's key order.
   ``c`` is the smallest capacity for which ``B * Pr[Poisson(n / B) > c] <= 2^-10``; on overflow
   the holder draws a new seed (at most :data:`MAX_ATTEMPTS`). Without ``F(x)`` a slot is
   pseudorandom, so a querier that sees a bucket learns nothing about records it has not
   obtained ``F`` for.
3. **Retrieval.** ``"pir"`` mode: the ``B`` buckets are the columns of a SimplePIR matrix
   (:mod:`.simplepir`, ``p = 2^8``: one byte per entry; a bucket's ``c`` slots are stacked down
   its column, so ``rows = c * (8 + value_bytes)``); ``B`` is the smallest bucket count with
   ``rows <= B`` (square-ish matrix; for 10^6 x 32 B: ``B = 7711``, ``c = 192``, a
   7680 x 7711 matrix). The querier fetches column ``b(x)`` by PIR -- the holder learns nothing
   about ``b(x)``. ``"bucket"`` mode (**k-anonymous only**): the most buckets ``B`` for which a
   bucket holds fewer than ``k`` keys with probability at most 2^-10 (Poisson; about ``4k`` keys
   per bucket for k = 8), and the holder redraws the seed until *every* bucket holds at least
   ``k`` of its keys (a table of at most ``k`` keys is one bucket); the querier sends ``b(x)``
   in the clear and the holder returns the bucket. No LWE, no hint. (``B = ceil(n / k)`` left
   about 4% of the buckets with 3 keys or fewer for k = 8.)
4. The querier scans the bucket for ``tag(x)``: a hit gives ``value = ct xor pad``, no hit means
   "absent". A false hit needs an 8-byte tag collision among the ``c`` slots: ``<= c 2^-64``.

Message sequence (a batch of ``K`` keys is one round trip after the handshake)::

    1. side a -> side b   header (JSON: protocol, version, role, mode, batch size K, and the
                          querier's cached setup digest or null)
    2. side b -> side a   header; both refuse a mismatch with PirHandshakeError
    3. H -> Q             setup parameters (JSON; their SHA-256 is the setup digest)
    4. H -> Q             the SimplePIR hint (rows x 1024 uint32) -- "pir" mode, and only when the
                          querier's cached digest differs (the offline download)
    5. Q -> H             K blinded points (K x 32 bytes)
    6. Q -> H             "pir": K SimplePIR queries (K x 4 cols bytes); "bucket": K bucket ids
    7. H -> Q             K evaluated points
    8. H -> Q             "pir": K answers (K x 4 rows bytes); "bucket": K buckets (K x c slots)

Parameters: LWE ``n = 1024``, ``q = 2^32``, ``sigma = 6.4`` (SimplePIR Sec. 4.2; details in
:mod:`.simplepir`); X25519 (RFC 7748); tag 8 bytes; bucket overflow target 2^-10 per attempt.

Security model: semi-honest holder and querier. Querier privacy (``"pir"``): the blinded point is
uniform in the prime-order group whatever ``x`` is (perfect), the PIR queries are pseudorandom
under LWE. Record privacy: DDH-type (one-more Gap-DH) for the OPRF in the random-oracle model,
and SHAKE-256 / BLAKE2b as random oracles; it holds even against a querier that crafts PIR
queries (it can then read other buckets, but those slots are masked under ``F`` values it does
not have). Not secure against a malicious holder (e.g. one that answers with a wrong table).

Leakage -- what each side learns:

- querier: for each of its keys the value or "absent"; the table's public layout (``B``, ``c``,
  value size), hence the record count to within the bucket slack; nothing about other records.
- holder (``"pir"``): the batch size ``K`` and whether the querier had the setup cached; nothing
  about the keys.
- holder (``"bucket"``, **k-anonymous**): additionally the bucket ``b(x)`` of every key, i.e. that
  ``x`` is one of the at least ``k`` held keys in that bucket (or a key it does not hold with that
  hash).
  This is k-anonymity, not privacy: repeated queries for the same key reveal it is the same
  bucket, and side information can narrow the bucket down.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from typing import Literal

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from privledger.protocols.channel import Channel, ChannelError, recv_records, send_records
from privledger.protocols.hash_to_curve import GROUP_ORDER, hash_to_u
from privledger.protocols.pir import simplepir
from privledger.protocols.pir.simplepir import PirError

logger = logging.getLogger(__name__)

Mode = Literal["pir", "bucket"]
Role = Literal["querier", "holder"]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

PROTOCOL = "privledger/keyword-pir"
VERSION = 3  # v3: RFC 9380 curve25519 suite (v2: edwards25519 via libsodium; v1: curve or twist)
TAG_BYTES = 8
POINT_BYTES = 32
SEED_BYTES = 32
OVERFLOW_TARGET = 2.0**-10
MAX_ATTEMPTS = 32
MAX_VALUE_BYTES = 1024
DEFAULT_K = 64

_DST_U = b"privledger/keyword-pir/v3-with-curve25519_XMD:SHA-512_ELL2_RO_"
_DST_F = b"privledger/keyword-pir/v1/oprf-out\x00"
_DST_S = b"privledger/keyword-pir/v1/slot\x00"
_PERSON_BUCKET = b"pl/kwpir/bucket"

_PARALLEL_THRESHOLD = 1 << 12
_CHUNK = 1 << 13

__all__ = [
    "HolderView",
    "KeywordResult",
    "KeywordTable",
    "PirError",
    "PirHandshakeError",
    "QuerierSetup",
    "oprf_evaluate",
    "run_holder",
    "run_querier",
]


class PirHandshakeError(ChannelError):
    """The peer's header is malformed or does not match ours (protocol, version, role, mode)."""


# --- OPRF over X25519 -------------------------------------------------------------------------


def hash_keys(keys: Sequence[bytes]) -> list[bytes]:
    """The public hash ``u(x)`` of each key: an X25519 u-coordinate of the prime-order subgroup."""
    return hash_to_u(keys, _DST_U)


def _oprf_output(key: bytes, point: bytes) -> bytes:
    return hashlib.sha256(_DST_F + len(key).to_bytes(8, "big") + key + point).digest()


def _x25519(scalar: X25519PrivateKey, u: bytes) -> bytes:
    """``X25519(scalar, u)``; ValueError when ``u`` is a small-order point."""
    return scalar.exchange(X25519PublicKey.from_public_bytes(u))


def _evaluate_chunk(private: bytes, keys: list[bytes]) -> bytes:
    """``F(x)`` for each key with the holder's scalar, concatenated (32 bytes each)."""
    scalar = X25519PrivateKey.from_private_bytes(private)
    pairs = zip(keys, hash_keys(keys), strict=True)
    return b"".join(_oprf_output(key, _x25519(scalar, u)) for key, u in pairs)


def oprf_evaluate(private: bytes, keys: Sequence[bytes], workers: int = 1) -> list[bytes]:
    """``F(x)`` under the holder scalar ``private`` for every key (the holder's offline work)."""
    if workers <= 1 or len(keys) < _PARALLEL_THRESHOLD:
        joined = _evaluate_chunk(private, list(keys))
    else:
        chunks = [list(keys[lo : lo + _CHUNK]) for lo in range(0, len(keys), _CHUNK)]
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            joined = b"".join(pool.map(_evaluate_chunk, repeat(private), chunks))
    return [joined[i : i + POINT_BYTES] for i in range(0, len(joined), POINT_BYTES)]


def _clamp(scalar: bytes) -> int:
    value = int.from_bytes(scalar, "little")
    value &= ~7
    value &= (1 << 255) - 1
    return value | (1 << 254)


@dataclass(frozen=True)
class _Blinded:
    key: bytes
    blinded: bytes
    unblind: X25519PrivateKey


def _blind(key: bytes) -> _Blinded:
    """Blind ``u(key)`` with a fresh scalar whose inverse modulo ``l`` is a clamped scalar."""
    u = hash_keys([key])[0]
    while True:  # a clamped r' = r^-1 mod l exists for about half of the draws
        raw = secrets.token_bytes(32)
        inverse = pow(_clamp(raw), -1, GROUP_ORDER)
        t = ((inverse - (1 << 254)) * pow(8, -1, GROUP_ORDER)) % GROUP_ORDER
        if t < 1 << 251:
            break
    blinded = _x25519(X25519PrivateKey.from_private_bytes(raw), u)
    unblind = ((1 << 254) + 8 * t).to_bytes(32, "little")
    return _Blinded(key, blinded, X25519PrivateKey.from_private_bytes(unblind))


def _unblind(blinded: _Blinded, evaluated: bytes) -> bytes:
    try:
        point = _x25519(blinded.unblind, evaluated)
    except ValueError:
        raise ChannelError("holder returned a small-order point") from None
    return _oprf_output(blinded.key, point)


# --- layout -----------------------------------------------------------------------------------


def _poisson_tail(mean: float, cap: int) -> float:
    """``Pr[Poisson(mean) > cap]`` (summed in log space, enough terms for double precision)."""
    if mean <= 0:
        return 0.0
    total = 0.0
    x = cap + 1
    while True:
        term = math.exp(-mean + x * math.log(mean) - math.lgamma(x + 1))
        total += term
        if x > mean and term < total * 1e-17:
            return total
        x += 1


def capacity(records: int, buckets: int) -> int:
    """Smallest slot count per bucket with ``buckets * Pr[overflow] <= 2^-10`` (Poisson)."""
    mean = records / buckets
    cap = max(1, math.ceil(mean))
    while buckets * _poisson_tail(mean, cap) > OVERFLOW_TARGET:
        cap += 1
    return cap


def pir_layout(records: int, value_bytes: int) -> tuple[int, int]:
    """``(buckets, capacity)`` for PIR mode: the fewest buckets with ``rows <= buckets``."""
    slot = TAG_BYTES + value_bytes
    lo, hi = 1, max(2, records * slot + 1)
    while lo < hi:  # rows(B) = slot * capacity(B) decreases in B; find the least B >= rows(B)
        mid = (lo + hi) // 2
        if slot * capacity(records, mid) <= mid:
            hi = mid
        else:
            lo = mid + 1
    return lo, capacity(records, lo)


def _poisson_head(mean: float, below: int) -> float:
    """``Pr[Poisson(mean) < below]``."""
    if mean <= 0:
        return 1.0
    return sum(math.exp(-mean + x * math.log(mean) - math.lgamma(x + 1)) for x in range(below))


def bucket_layout(records: int, k: int) -> tuple[int, int]:
    """``(buckets, capacity)`` for bucket mode: the most buckets for which every bucket holds
    at least ``k`` keys except with probability ``2^-10`` (Poisson; :meth:`KeywordTable.build`
    then draws seeds until every bucket does). About ``4k`` keys per bucket for k = 8."""
    if k < 1:
        raise PirError(f"k must be at least 1, not {k}")
    if records <= k:  # one bucket, the whole table: the bucket id tells the holder nothing
        return 1, capacity(records, 1)
    lo, hi = 1, max(1, records // k)
    while lo < hi:  # the underflow chance grows with the bucket count: the largest B that fits
        mid = (lo + hi + 1) // 2
        if mid * _poisson_head(records / mid, k) <= OVERFLOW_TARGET:
            lo = mid
        else:
            hi = mid - 1
    return lo, capacity(records, lo)


def bucket_of(key: bytes, seed: bytes, buckets: int) -> int:
    """The bucket of ``key`` under the table seed (public; the querier computes it too)."""
    digest = hashlib.blake2b(key, digest_size=8, key=seed, person=_PERSON_BUCKET).digest()
    return (int.from_bytes(digest, "little") * buckets) >> 64


def _tag_and_pad(seed: bytes, oprf: bytes, value_bytes: int) -> bytes:
    return hashlib.shake_256(_DST_S + seed + oprf).digest(TAG_BYTES + value_bytes)


def _random_u8(shape: tuple[int, ...]) -> U8:
    size = math.prod(shape)
    return simplepir.keystream(secrets.token_bytes(32), size).reshape(shape)


# --- the holder's table -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Setup:
    mode: Mode
    records: int
    value_bytes: int
    buckets: int
    capacity: int
    seed: bytes
    pir_seed: bytes | None

    @property
    def slot_bytes(self) -> int:
        return TAG_BYTES + self.value_bytes

    @property
    def pir_params(self) -> simplepir.Params:
        assert self.pir_seed is not None
        return simplepir.Params(self.capacity * self.slot_bytes, self.buckets, self.pir_seed)

    def encode(self) -> bytes:
        fields = {
            "mode": self.mode,
            "records": self.records,
            "value_bytes": self.value_bytes,
            "buckets": self.buckets,
            "capacity": self.capacity,
            "seed": self.seed.hex(),
            "pir_seed": None if self.pir_seed is None else self.pir_seed.hex(),
        }
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def decode(cls, payload: bytes, mode: Mode) -> _Setup:
        try:
            fields = json.loads(payload)
            setup = cls(
                mode=fields["mode"],
                records=int(fields["records"]),
                value_bytes=int(fields["value_bytes"]),
                buckets=int(fields["buckets"]),
                capacity=int(fields["capacity"]),
                seed=bytes.fromhex(fields["seed"]),
                pir_seed=None if fields["pir_seed"] is None else bytes.fromhex(fields["pir_seed"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ChannelError(f"malformed setup parameters: {exc}") from None
        if setup.mode != mode or len(setup.seed) != SEED_BYTES:
            raise ChannelError("setup parameters do not match the session")
        if not 1 <= setup.value_bytes <= MAX_VALUE_BYTES or setup.buckets < 1:
            raise ChannelError("setup parameters out of range")
        if setup.capacity < 1 or (mode == "pir") != (setup.pir_seed is not None):
            raise ChannelError("setup parameters out of range")
        return setup


def _check_items(items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """Validate; return ``[keys..., values...]`` halves as one list to keep a single pass."""
    pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
    keys = [pair[0] for pair in pairs]
    values = [pair[1] for pair in pairs]
    if not all(isinstance(x, bytes) for x in keys) or not all(isinstance(v, bytes) for v in values):
        raise TypeError("keys and values must be bytes (encode text first)")
    if len(set(keys)) != len(keys):
        raise PirError("duplicate keys in the table")
    return keys + values


class KeywordTable:
    """The holder's table: OPRF key, bucketed encrypted slots and (``"pir"``) the PIR server.

    Build with :meth:`build`; serve sessions with :func:`run_holder`. ``build_seconds`` and
    ``hint_seconds`` record the offline cost (OPRF over all keys + layout, and the hint).
    """

    def __init__(
        self, setup: _Setup, slots: U8, bucket_keys: list[list[bytes]], private: bytes
    ) -> None:
        self._setup = setup
        self._slots = slots  # (buckets, capacity, slot_bytes)
        self._bucket_keys = bucket_keys
        self._private = private
        self._scalar = X25519PrivateKey.from_private_bytes(private)
        self._server: simplepir.Server | None = None
        self._setup_message = setup.encode()
        self.digest = hashlib.sha256(self._setup_message).hexdigest()
        self.build_seconds = 0.0
        self.hint_seconds = 0.0
        if setup.mode == "pir":
            params = setup.pir_params
            matrix = slots.reshape(setup.buckets, params.rows).T
            self._server = simplepir.Server(params, np.ascontiguousarray(matrix))
            started = time.perf_counter()
            self._hint = self._server.hint()
            self.hint_seconds = time.perf_counter() - started

    @classmethod
    def build(
        cls,
        items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
        *,
        mode: Mode = "pir",
        k: int = DEFAULT_K,
        workers: int | None = None,
    ) -> KeywordTable:
        """Build a table from ``key -> value`` (all values of one length, 1..1024 bytes).

        ``mode="bucket"`` builds the k-anonymous table (every bucket at least ``k`` keys, see
        :func:`bucket_layout`). ``workers``
        processes evaluate the OPRF on large tables (default ``os.cpu_count()``).
        """
        if mode not in ("pir", "bucket"):
            raise PirError(f"mode must be 'pir' or 'bucket', not {mode!r}")
        started = time.perf_counter()
        both = _check_items(items)
        n = len(both) // 2
        keys, values = both[:n], both[n:]
        lengths = {len(v) for v in values}
        if len(lengths) > 1:
            raise PirError(f"all values must have the same length, got {sorted(lengths)[:5]}")
        value_bytes = lengths.pop() if lengths else 32
        if not 1 <= value_bytes <= MAX_VALUE_BYTES:
            raise PirError(f"value length must be 1..{MAX_VALUE_BYTES} bytes, not {value_bytes}")
        buckets, cap = pir_layout(n, value_bytes) if mode == "pir" else bucket_layout(n, k)
        private = secrets.token_bytes(32)
        procs = (os.cpu_count() or 1) if workers is None else workers
        oprf = oprf_evaluate(private, keys, procs)
        for _attempt in range(MAX_ATTEMPTS):
            seed = secrets.token_bytes(SEED_BYTES)
            where = np.fromiter((bucket_of(x, seed, buckets) for x in keys), np.int64, n)
            counts = np.bincount(where, minlength=buckets)
            least = min(k, n) if mode == "bucket" else 0  # every bucket hides >= k keys
            if n == 0 or (counts.max() <= cap and counts.min() >= least):
                break
            logger.info("keyword-pir: bucket overflow or underflow, new seed")
        else:
            raise PirError(f"no layout within the bucket bounds in {MAX_ATTEMPTS} attempts")
        pir_seed = secrets.token_bytes(simplepir.SEED_BYTES) if mode == "pir" else None
        setup = _Setup(mode, n, value_bytes, buckets, cap, seed, pir_seed)
        slots = _random_u8((buckets, cap, setup.slot_bytes))
        position = _positions(where, buckets, cap)
        # every record's tag || pad, then the values xored in as one array: a record at a time
        # through Python integers took ~6 s of CPU at 10^6 records of 32 bytes, this ~2 s
        masks = b"".join(_tag_and_pad(seed, f, value_bytes) for f in oprf)
        slot_rows = np.frombuffer(masks, np.uint8).reshape(n, setup.slot_bytes).copy()
        plain = np.frombuffer(b"".join(values), np.uint8).reshape(n, value_bytes)
        slot_rows[:, TAG_BYTES:] ^= plain
        slots[where, position] = slot_rows
        bucket_keys: list[list[bytes]] = [[] for _ in range(buckets)]
        for key, b in zip(keys, where.tolist(), strict=True):
            bucket_keys[b].append(key)
        table = cls(setup, slots, bucket_keys, private)
        table.build_seconds = time.perf_counter() - started - table.hint_seconds
        logger.info(
            "keyword-pir table (%s): %d records, %d buckets x %d slots, %.2f s + hint %.2f s",
            mode,
            n,
            buckets,
            cap,
            table.build_seconds,
            table.hint_seconds,
        )
        return table

    @property
    def mode(self) -> Mode:
        return self._setup.mode

    @property
    def records(self) -> int:
        return self._setup.records

    @property
    def buckets(self) -> int:
        return self._setup.buckets

    @property
    def capacity(self) -> int:
        return self._setup.capacity

    @property
    def value_bytes(self) -> int:
        return self._setup.value_bytes

    @property
    def offline_bytes(self) -> int:
        """Bytes the querier downloads once: setup parameters plus the hint (``"pir"``)."""
        hint = self._setup.pir_params.hint_bytes if self.mode == "pir" else 0
        return len(self._setup_message) + hint

    def bucket_keys(self, bucket: int) -> list[bytes]:
        """The held keys in ``bucket`` -- what a bucket id reveals to the holder."""
        return list(self._bucket_keys[bucket])

    def evaluate(self, blinded: U8) -> U8:
        """``X25519(k, a)`` for each blinded point (online OPRF step)."""
        out = np.empty_like(blinded)
        for i, point in enumerate(blinded):
            try:
                out[i] = np.frombuffer(_x25519(self._scalar, point.tobytes()), np.uint8)
            except ValueError:
                raise ChannelError("querier sent a small-order point") from None
        return out

    def answer_pir(self, queries: simplepir.U32) -> simplepir.U32:
        assert self._server is not None
        return self._server.answer(queries)

    def answer_buckets(self, ids: I64) -> U8:
        if ids.size and (ids.min() < 0 or ids.max() >= self.buckets):
            raise ChannelError("bucket id out of range")
        return self._slots[ids].reshape(len(ids), self.capacity * self._setup.slot_bytes)


def _positions(where: I64, buckets: int, cap: int) -> I64:
    """A random free slot in its bucket for every record: each bucket has its own random
    permutation of its slots, so a record's slot says nothing about its rank in the holder's
    insertion order (one permutation per table did: rank ``r`` sat at the same slot in every
    bucket)."""
    n = len(where)
    order = np.argsort(where, kind="stable")
    sorted_where = where[order]
    starts = np.searchsorted(sorted_where, np.arange(buckets))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[sorted_where]
    noise = np.frombuffer(_random_u8((buckets * cap * 8,)).tobytes(), "<u8").reshape(buckets, cap)
    permutations = np.argsort(noise, axis=1)
    return permutations[where, rank].astype(np.int64)


# --- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuerierSetup:
    """What the querier keeps from the offline phase; pass it to later :func:`run_querier` calls."""

    digest: str
    setup: _Setup
    client: simplepir.Client | None


@dataclass(frozen=True)
class KeywordResult:
    """Per key, the value or ``None`` (absent); the setup to reuse; the querier's CPU time."""

    values: list[bytes | None]
    setup: QuerierSetup
    client_seconds: float
    offline_bytes: int


@dataclass(frozen=True)
class HolderView:
    """What the holder saw: mode, batch size, whether it sent the hint; bucket ids in bucket
    mode (``None`` in PIR mode); and its own computing time for the batch."""

    mode: Mode
    batch: int
    sent_hint: bool
    buckets: tuple[int, ...] | None
    server_seconds: float


def run_querier(
    channel: Channel,
    keys: Sequence[bytes],
    *,
    mode: Mode = "pir",
    setup: QuerierSetup | None = None,
    timeout: float | None = None,
) -> KeywordResult:
    """Fetch the values of ``keys`` (one round trip) from the holder at the other end.

    Pass the ``setup`` of an earlier result to skip the offline download when the holder's table
    is unchanged. ``timeout`` bounds each wait for a peer message in seconds.
    """
    if mode not in ("pir", "bucket"):
        raise PirError(f"mode must be 'pir' or 'bucket', not {mode!r}")
    if not all(isinstance(x, bytes) for x in keys):
        raise TypeError("keys must be bytes (encode text first)")
    cached = setup.digest if setup is not None and setup.setup.mode == mode else None
    _handshake(channel, _Header("querier", mode, len(keys), cached), timeout)
    setup_message = channel.recv(timeout)
    digest = hashlib.sha256(setup_message).hexdigest()
    offline = len(setup_message)
    if setup is None or digest != cached:
        params = _Setup.decode(setup_message, mode)
        client = None
        if mode == "pir":
            pir = params.pir_params
            hint = recv_records(channel, 4 * simplepir.LWE_N, timeout, count=pir.rows)
            offline += len(hint.tobytes()) + 12
            hint32 = hint.view("<u4").astype(np.uint32).reshape(pir.rows, simplepir.LWE_N)
            client = simplepir.Client(pir, hint32)
        setup = QuerierSetup(digest, params, client)
    info = setup.setup
    started = time.perf_counter()
    blinded = [_blind(x) for x in keys]
    points = np.frombuffer(b"".join(b.blinded for b in blinded), np.uint8)
    ids = np.array([bucket_of(x, info.seed, info.buckets) for x in keys], dtype=np.int64)
    state: simplepir.QueryState | None = None
    if mode == "pir":
        assert setup.client is not None
        state, queries = setup.client.query(ids)
        request = queries.astype("<u4").view(np.uint8).reshape(len(keys), 4 * info.buckets)
    else:
        request = ids.astype("<u8").view(np.uint8).reshape(len(keys), 8)
    spent = time.perf_counter() - started
    send_records(channel, points.reshape(len(keys), POINT_BYTES))
    send_records(channel, request)
    evaluated = recv_records(channel, POINT_BYTES, timeout, count=len(keys))
    started = time.perf_counter()
    if mode == "pir":
        assert setup.client is not None and state is not None
        raw = recv_records(channel, 4 * info.pir_params.rows, timeout, count=len(keys))
        answers = raw.view("<u4").astype(np.uint32).reshape(len(keys), info.pir_params.rows)
        buckets = setup.client.decode(state, answers)
    else:
        buckets = recv_records(channel, info.capacity * info.slot_bytes, timeout, count=len(keys))
    values: list[bytes | None] = []
    for i, b in enumerate(blinded):
        f = _unblind(b, evaluated[i].tobytes())
        values.append(_find(buckets[i].reshape(info.capacity, info.slot_bytes), info, f))
    spent += time.perf_counter() - started
    return KeywordResult(values, setup, spent, offline)


def _find(bucket: U8, info: _Setup, oprf: bytes) -> bytes | None:
    mask = _tag_and_pad(info.seed, oprf, info.value_bytes)
    tag = np.frombuffer(mask[:TAG_BYTES], np.uint8)
    hits = np.flatnonzero((bucket[:, :TAG_BYTES] == tag).all(axis=1))
    if hits.size == 0:
        return None
    body = int.from_bytes(bucket[hits[0], TAG_BYTES:].tobytes(), "little")
    value = body ^ int.from_bytes(mask[TAG_BYTES:], "little")
    return value.to_bytes(info.value_bytes, "little")


def run_holder(
    channel: Channel, table: KeywordTable, *, timeout: float | None = None
) -> HolderView:
    """Serve one querier session (handshake, setup, one batch) from ``table``."""
    header = _handshake(channel, _Header("holder", table.mode, 0, None), timeout)
    setup_message = table._setup_message
    channel.send(setup_message)
    sent_hint = table.mode == "pir" and header.cached != table.digest
    if sent_hint:
        hint = table._hint.astype("<u4").view(np.uint8)
        send_records(channel, hint.reshape(hint.shape[0], 4 * simplepir.LWE_N))
    k = header.batch
    points = recv_records(channel, POINT_BYTES, timeout, count=k)
    if table.mode == "pir":
        cols = table._setup.buckets
        raw = recv_records(channel, 4 * cols, timeout, count=k)
        queries = raw.view("<u4").astype(np.uint32).reshape(k, cols)
        ids: tuple[int, ...] | None = None
    else:
        raw = recv_records(channel, 8, timeout, count=k)
        id_array = raw.view("<u8").astype(np.int64).reshape(k)
        ids = tuple(id_array.tolist())
    started = time.perf_counter()
    evaluated = table.evaluate(points)
    if table.mode == "pir":
        rows = table._setup.pir_params.rows
        reply = table.answer_pir(queries).astype("<u4").view(np.uint8).reshape(k, 4 * rows)
    else:
        reply = table.answer_buckets(id_array)
    spent = time.perf_counter() - started
    send_records(channel, evaluated)
    send_records(channel, reply)
    return HolderView(table.mode, k, sent_hint, ids, spent)


@dataclass(frozen=True)
class _Header:
    role: Role
    mode: Mode
    batch: int
    cached: str | None

    def encode(self) -> bytes:
        fields = {
            "protocol": PROTOCOL,
            "version": VERSION,
            "role": self.role,
            "mode": self.mode,
            "batch": self.batch,
            "cached": self.cached,
        }
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def decode(cls, payload: bytes) -> _Header:
        try:
            fields = json.loads(payload)
        except ValueError:
            raise PirHandshakeError("peer header is not JSON") from None
        if not isinstance(fields, dict):
            raise PirHandshakeError("peer header is not a JSON object")
        protocol, version = fields.get("protocol"), fields.get("version")
        if (protocol, version) != (PROTOCOL, VERSION):
            raise PirHandshakeError(
                f"peer speaks {protocol!r} version {version!r}, we speak {PROTOCOL!r} {VERSION}"
            )
        role, mode = fields.get("role"), fields.get("mode")
        batch, cached = fields.get("batch"), fields.get("cached")
        if role not in ("querier", "holder") or mode not in ("pir", "bucket"):
            raise PirHandshakeError(f"peer header has bad role/mode: {role!r}, {mode!r}")
        if type(batch) is not int or batch < 0:
            raise PirHandshakeError(f"peer header has bad batch size {batch!r}")
        if cached is not None and not isinstance(cached, str):
            raise PirHandshakeError("peer header has a bad cached digest")
        return cls(role, mode, batch, cached)


def _handshake(channel: Channel, ours: _Header, timeout: float | None) -> _Header:
    """Exchange headers (side a first) and return the peer's."""
    if channel.side == "a":
        channel.send(ours.encode())
        theirs = _Header.decode(channel.recv(timeout))
    else:
        theirs = _Header.decode(channel.recv(timeout))
        channel.send(ours.encode())
    if theirs.role == ours.role:
        raise PirHandshakeError(f"both parties are {ours.role!r}; one must be the other role")
    if theirs.mode != ours.mode:
        raise PirHandshakeError(f"mode mismatch: we run {ours.mode!r}, the peer {theirs.mode!r}")
    return theirs
