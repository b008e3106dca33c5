"""Cuckoo hashing (receiver) and simple hashing (sender) for KKRT-PSI.

Items are first reduced to 128-bit digests (:func:`digests`). The three bin choices of a digest
``d`` under a 16-byte seed are read from ``AES_seed(d)``: its first three little-endian 32-bit
words ``w_0, w_1, w_2`` give ``h_i(d) = (w_i * bins) >> 32`` (multiply-shift range reduction,
bias below ``bins / 2^32``). The seed is drawn by the receiver from :mod:`secrets` and sent to
the sender, so both use the same functions.

Parameters (stash-less, 3 hash functions): ``bins = ceil(1.27 n)`` for ``n >= 2^10``. Pinkas,
Schneider, Tkachenko and Yanai ("Efficient Circuit-based PSI with Linear Communication",
EUROCRYPT 2019, Sec. 3), extrapolating the experiments of Pinkas, Schneider and Zohner
("Scalable Private Set Intersection Based on OT Extension", ACM TOPS 2018), give failure
probability <= 2^-40 for 3 functions, 1.27 n bins and no stash. Small sets fail more often at
that load, so below 2^10 we use the empirical fit of cryptoTools' ``CuckooIndex::selectParams``
(stash-less, h = 3, lambda = 40), which asks for a larger expansion (e.g. ~3.9 at n = 16,
~1.84 at n = 256), and at least 8 bins. ``bins`` is rounded up to a multiple of 128.

Failure handling: insertion is a vectorised random walk (all pending items try a bin at once;
per bin one wins and evicts the previous occupant, which moves on to a random *other* choice)
bounded by :data:`MAX_ROUNDS` rounds. If items remain, the table is discarded and rebuilt with a
fresh seed, up to :data:`MAX_ATTEMPTS` times, then :class:`CuckooError` is raised. A returned
table is checked (every item exactly once, in one of its own bins), so a failure can cost time
but never yields a wrong placement.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

logger = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

HASHES = 3
EXPANSION = 1.27
STAT_SECURITY = 40
SMALL_N = 1 << 10
MAX_ROUNDS = 4000
MAX_ATTEMPTS = 16
SEED_BYTES = 16
DIGEST_BYTES = 16
EMPTY = -1


class CuckooError(Exception):
    """No cuckoo table was found within the attempt budget (never a wrong table)."""


def digests(items: Sequence[bytes], domain: bytes) -> U8:
    """BLAKE2b-128 of each item, personalised with ``domain`` (<= 16 bytes): ``(n, 16)``."""
    blake = hashlib.blake2b
    joined = b"".join([blake(x, digest_size=DIGEST_BYTES, person=domain).digest() for x in items])
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(items), DIGEST_BYTES)


def expansion(n: int) -> float:
    """Bins per item for ``n`` items (see the module docstring for the sources)."""
    if n >= SMALL_N:
        return EXPANSION
    nn = math.log2(max(n, 2))
    # cryptoTools CuckooIndex::selectParams, stash-less h = 3: lambda = a e + b.
    a = 123.5 / 2 * (1 + math.erf((nn - 6.3) / (2.3 * math.sqrt(2))))
    b = -130 / 2 * (1 + math.erf((nn - 6.45) / (2.18 * math.sqrt(2)))) - nn
    return max(EXPANSION, (STAT_SECURITY - b) / a)


def table_size(n: int) -> int:
    """Number of bins for ``n`` receiver items: a multiple of 128, at least 128."""
    bins = max(8, math.ceil(expansion(n) * n))
    return -(-bins // 128) * 128


def locations(digest: U8, seed: bytes, bins: int) -> I64:
    """``(3, n)`` bin indices ``h_i(d)`` of each digest under ``seed``."""
    if len(seed) != SEED_BYTES:
        raise ValueError("cuckoo seed must be 16 bytes")
    n = len(digest)
    buf = np.empty(n * DIGEST_BYTES + DIGEST_BYTES, dtype=np.uint8)
    encryptor = Cipher(algorithms.AES(seed), modes.ECB()).encryptor()
    encryptor.update_into(np.ascontiguousarray(digest).reshape(-1).data, buf.data)
    words = buf[: n * DIGEST_BYTES].view("<u4").reshape(n, 4)[:, :HASHES].T.astype(np.uint64)
    return ((words * np.uint64(bins)) >> np.uint64(32)).astype(np.int64)


@dataclass(frozen=True)
class CuckooTable:
    """A placement: ``table[j]`` is the item in bin ``j`` (or -1), ``which[k]`` the hash index."""

    seed: bytes
    bins: int
    table: I64
    which: npt.NDArray[np.int8]
    attempts: int


def build(digest: U8, bins: int) -> CuckooTable:
    """Cuckoo-insert all digests into ``bins`` bins, re-seeding on failure."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        seed = secrets.token_bytes(SEED_BYTES)
        loc = locations(digest, seed, bins)
        placed = insert(loc, bins)
        if placed is not None:
            table, which = placed
            return CuckooTable(seed, bins, table, which, attempt)
        logger.warning(
            "cuckoo insertion of %d items into %d bins failed; re-seeding", len(loc[0]), bins
        )
    raise CuckooError(f"no cuckoo table for {len(digest)} items in {bins} bins")


def _random_u8(count: int) -> U8:
    return np.frombuffer(secrets.token_bytes(count), dtype=np.uint8)


def insert(loc: I64, bins: int) -> tuple[I64, npt.NDArray[np.int8]] | None:
    """Place item ``k`` in one of the bins ``loc[:, k]``; ``None`` after :data:`MAX_ROUNDS`."""
    n = loc.shape[1]
    table = np.full(bins, EMPTY, dtype=np.int64)
    which = np.zeros(n, dtype=np.int8)  # the hash index an item tries next / sits at
    pending = np.arange(n, dtype=np.int64)
    for _ in range(MAX_ROUNDS):
        if pending.size == 0:
            break
        target = loc[which[pending], pending]
        previous = table[target]
        table[target] = pending  # with several writers per bin, one of them wins
        won = table[target] == pending
        evicted = previous[won]
        evicted = evicted[evicted != EMPTY]
        # Several winners cannot share a bin, so ``evicted`` has no duplicates. The evicted and
        # the losers move on to one of their two other hash functions, at random.
        losers = pending[~won]
        pending = np.concatenate((evicted, losers))
        if pending.size:
            step = 1 + (_random_u8(pending.size) & 1).astype(np.int8)
            which[pending] = (which[pending] + step) % HASHES
    else:
        if pending.size:
            return None
    _check(loc, table, which)
    return table, which


def _check(loc: I64, table: I64, which: npt.NDArray[np.int8]) -> None:
    n = loc.shape[1]
    occupied = np.flatnonzero(table != EMPTY)
    items = table[occupied]
    if items.size != n or not np.all(np.bincount(items, minlength=n) == 1):
        raise CuckooError("cuckoo table check failed: items missing or duplicated")
    if not np.array_equal(loc[which[items], items], occupied):
        raise CuckooError("cuckoo table check failed: an item sits outside its bins")
