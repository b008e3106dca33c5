"""Cuckoo hashing (receiver) and simple hashing (sender) for KKRT-PSI, and item keys.

Items are first reduced to 128-bit values: BLAKE2b digests (:func:`digests`), or -- faster and
vectorised, used by KKRT-PSI -- *item keys* (:func:`item_keys`), an injective encoding of short
items with a hash only for long ones::

    len(x) <= 15:  key = x || zero padding to 15 bytes || len(x)          (byte 15 in 0..15)
    len(x) >= 16:  key = BLAKE2b-128_domain(x)[0:15] || (0x80 | (BLAKE2b-128_domain(x)[15] & 15))

Bits 4-6 of byte 15 are zero in every key, so a key can carry a cuckoo hash index (bits 4-5,
:func:`indexed_keys`) or a dummy mark (bit 6) and stay injective. Two distinct short items never
share a key; a long item shares a key with another item only through a 124-bit BLAKE2b
collision. For short items the key order (bytes 0..15 big-endian) is the ``bytes`` order.
:func:`distinct_keys` removes duplicate keys with numpy sorts (no Python set).

The three bin choices of a digest
``d`` under a 16-byte seed are read from ``AES_seed(d)``: its first three little-endian 32-bit
words ``w_0, w_1, w_2`` give ``h_i(d) = (w_i * bins) >> 32`` (multiply-shift range reduction,
bias below ``bins / 2^32``). The seed is drawn by the receiver from :mod:`secrets` and sent to
the sender, so both use the same functions.

Parameters (stash-less, 3 hash functions): ``bins = ceil(e(n) n)`` with the expansion ``e(n)``
from the empirical fit of cryptoTools' ``CuckooIndex::selectParams`` (stash-less, h = 3),
``lambda = a(n) e + b(n)`` with ``a -> 123.5`` and ``b -> -130 - log2 n`` for large ``n``, solved
for ``lambda`` = :data:`STAT_SECURITY` = 40: ``e`` is ~3.1 at n = 16, ~1.55 at n = 256, 1.48 at
n = 2^10, 1.54 at n = 2^20 and 1.57 at n = 2^24, and at least 8 bins. (The earlier ``1.27 n``
for ``n >= 2^10``, after Pinkas, Schneider, Tkachenko and Yanai, EUROCRYPT 2019, fails with
probability about 2^-7 at 2^20 by this fit, 2^-29 by gentler extrapolations -- either way an
abort the peer sees, with a probability that depends on the receiver's set; issue 15, item 7.)
``bins`` is rounded up to a multiple of 128.

Failure handling: insertion is a vectorised random walk (all pending items try a bin at once;
per bin one wins and evicts the previous occupant, which moves on to a random *other* choice)
bounded by :data:`MAX_ROUNDS` rounds. If items remain, the table is discarded and rebuilt with a
fresh seed, up to :data:`MAX_ATTEMPTS` times, then :class:`CuckooError` is raised
(:func:`build_with_seed`, for a seed already sent to the peer, raises at once). A returned
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
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

logger = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

HASHES = 3
EXPANSION = 1.27  # a floor; the fit asks for more at every n (see table_size)
STAT_SECURITY = 40
MAX_ROUNDS = 4000
MAX_ATTEMPTS = 16
SEED_BYTES = 16
DIGEST_BYTES = 16
KEY_BYTES = 16
EMPTY = -1


class CuckooError(Exception):
    """No cuckoo table was found within the attempt budget (never a wrong table)."""


def digests(items: Sequence[bytes], domain: bytes) -> U8:
    """BLAKE2b-128 of each item, personalised with ``domain`` (<= 16 bytes): ``(n, 16)``."""
    blake = hashlib.blake2b
    joined = b"".join([blake(x, digest_size=DIGEST_BYTES, person=domain).digest() for x in items])
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(items), DIGEST_BYTES)


SHORT_ITEM = 15  # items up to this many bytes are encoded, not hashed
LONG_FLAG = 0x80
DUMMY_FLAG = 0x40
INDEX_SHIFT = 4
_SCRAMBLE_KEY = bytes(16)  # public: only spreads keys for sorting, not a secret


def pack_items(items: Sequence[bytes]) -> tuple[U8, I64]:
    """All items in one buffer plus ``n + 1`` offsets; anything but ``bytes`` is refused."""
    if not set(map(type, items)) <= {bytes}:
        raise TypeError("PSI items must be bytes (encode text first)")
    return arrow_buffers(pa.array(items, type=pa.large_binary()))


def arrow_buffers(array: Any) -> tuple[U8, I64]:
    """``(data, offsets)`` of a null-free pyarrow binary or string array (any offset width)."""
    if array.null_count:
        raise TypeError("PSI items must not be null")
    kind = array.type
    if not (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_null(kind)
    ):
        raise TypeError(f"PSI items must be binary or text, not {kind}")
    n = len(array)
    if n == 0 or pa.types.is_null(kind):
        return np.zeros(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64)
    _, offset_buffer, data_buffer = array.buffers()
    wide = pa.types.is_large_binary(kind) or pa.types.is_large_string(kind)
    raw = np.frombuffer(offset_buffer, dtype=np.int64 if wide else np.int32)
    offsets: I64 = raw[array.offset : array.offset + n + 1].astype(np.int64)
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)
        if data_buffer is not None
        else np.zeros(0, dtype=np.uint8)
    )
    return data, offsets


def item_keys(data: U8, offsets: I64, domain: bytes) -> U8:
    """The ``(n, 16)`` item keys (module docstring) of ``data[offsets[k] : offsets[k + 1]]``."""
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    keys = np.zeros((n, KEY_BYTES), dtype=np.uint8)
    short = lengths <= SHORT_ITEM
    body = data[offsets[0] : offsets[-1]] if n else data[:0]
    if not short.all():
        body = body[np.repeat(short, lengths)]
    short_lengths = lengths if short.all() else lengths[short]
    if short_lengths.size and short_lengths.min() == short_lengths.max():  # fixed width
        width = int(short_lengths[0])
        packed = np.zeros((len(short_lengths), KEY_BYTES), dtype=np.uint8)
        packed[:, :width] = body.reshape(len(short_lengths), width)
    else:
        mask = np.arange(SHORT_ITEM)[None, :] < short_lengths[:, None]
        packed = np.zeros((len(short_lengths), KEY_BYTES), dtype=np.uint8)
        packed[:, :SHORT_ITEM][mask] = body
    packed[:, SHORT_ITEM] = short_lengths
    if long_free := bool(short.all()):
        keys = packed
    else:
        keys[short] = packed
    long_items = np.flatnonzero(~short)
    if not long_free:
        view = memoryview(data.data)
        blake = hashlib.blake2b
        starts, ends = offsets[long_items].tolist(), offsets[long_items + 1].tolist()
        joined = b"".join(
            [
                blake(view[lo:hi], digest_size=KEY_BYTES, person=domain).digest()
                for lo, hi in zip(starts, ends, strict=True)
            ]
        )
        hashed = np.frombuffer(joined, dtype=np.uint8).reshape(-1, KEY_BYTES).copy()
        hashed[:, SHORT_ITEM] = LONG_FLAG | (hashed[:, SHORT_ITEM] & 0x0F)
        keys[long_items] = hashed
    return keys


def indexed_keys(keys: U8, which: npt.NDArray[np.integer] | int) -> U8:
    """Keys with the cuckoo hash index ``which`` (0..2) in bits 4-5 of byte 15: injective in
    ``(key, which)``. These are the KKRT OPRF inputs."""
    inputs = np.array(keys, dtype=np.uint8, copy=True)
    inputs[:, SHORT_ITEM] |= np.asarray(which).astype(np.uint8) << INDEX_SHIFT
    return inputs


def dummy_keys(count: int) -> U8:
    """Random keys marked as dummies (bit 6 of byte 15): never equal to an item key."""
    keys = np.frombuffer(secrets.token_bytes(count * KEY_BYTES), dtype=np.uint8)
    keys = keys.reshape(count, KEY_BYTES).copy()
    keys[:, SHORT_ITEM] = DUMMY_FLAG | (keys[:, SHORT_ITEM] & 0x8F)
    return keys


def distinct_keys(keys: U8) -> I64:
    """Ascending indices of the first occurrence of every distinct key.

    Sorts 64-bit prefixes of ``AES_0(key)`` (a fixed public permutation, so the prefixes are
    spread) with the item index in their low bits; keys whose shortened prefixes collide --
    duplicates, and rarely distinct keys -- are then ordered by the full key.
    """
    n = len(keys)
    if n < 2:
        return np.arange(n, dtype=np.int64)
    bits = np.uint64((n - 1).bit_length())
    tagged = _scrambled_prefixes(keys, bits)
    tagged.sort()
    if not _adjacent_equal(tagged, bits):
        return np.arange(n, dtype=np.int64)
    index = (tagged & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    same = (tagged[1:] >> bits) == (tagged[:-1] >> bits)
    involved = np.unique(np.concatenate((np.flatnonzero(same), np.flatnonzero(same) + 1)))
    suspects = np.sort(index[involved])  # ascending, so a stable sort keeps first occurrences
    words = keys[suspects].view(">u8")
    order = suspects[np.lexsort((words[:, 1], words[:, 0]))]
    repeat = np.all(keys[order[1:]] == keys[order[:-1]], axis=1)
    keep = np.ones(n, dtype=np.bool_)
    keep[order[1:][repeat]] = False
    return np.flatnonzero(keep)


_PREFIX_CHUNK = 1 << 15  # keys scrambled at a time: the temporaries stay in cache


def _scrambled_prefixes(keys: U8, bits: np.uint64) -> U64:
    """:func:`distinct_keys`' sort keys: the first word of ``AES_0(key)`` with its low ``bits``
    bits replaced by the key's index, computed a chunk at a time (whole-array temporaries were
    ~80 MB of fresh pages at 2^20, about as much CPU in page faults as the work)."""
    n = len(keys)
    tagged = np.empty(n, dtype=np.uint64)
    scrambled = np.empty(_PREFIX_CHUNK * KEY_BYTES + KEY_BYTES, dtype=np.uint8)
    encryptor = Cipher(algorithms.AES(_SCRAMBLE_KEY), modes.ECB()).encryptor()
    source = np.ascontiguousarray(keys).reshape(-1)
    for lo in range(0, n, _PREFIX_CHUNK):
        hi = min(lo + _PREFIX_CHUNK, n)
        room = scrambled[: (hi - lo) * KEY_BYTES + KEY_BYTES]
        encryptor.update_into(source[lo * KEY_BYTES : hi * KEY_BYTES].data, room.data)
        chunk = tagged[lo:hi]
        np.right_shift(room[: (hi - lo) * KEY_BYTES].view("<u8")[::2], bits, out=chunk)
        chunk <<= bits
        chunk |= np.arange(lo, hi, dtype=np.uint64)
    return tagged


def _adjacent_equal(tagged: U64, bits: np.uint64) -> bool:
    """Whether two neighbours of the sorted ``tagged`` agree above their low ``bits`` bits."""
    for lo in range(0, len(tagged) - 1, _PREFIX_CHUNK):
        hi = min(lo + _PREFIX_CHUNK, len(tagged) - 1)
        differ = tagged[lo + 1 : hi + 1] ^ tagged[lo:hi]
        differ >>= bits
        if not differ.all():
            return True
    return False


def expansion(n: int) -> float:
    """Bins per item for ``n`` items: failure probability at most 2^-40 by the fit in the module
    docstring."""
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
    words = buf[: n * DIGEST_BYTES].view("<u4").reshape(n, 4)
    loc = np.empty((HASHES, n), dtype=np.int64)
    for i in range(HASHES):  # one row at a time: few n-sized temporaries
        row = loc[i].view(np.uint64)
        row[:] = words[:, i]
        row *= np.uint64(bins)
        row >>= np.uint64(32)
    return loc


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


def build_with_seed(digest: U8, bins: int, seed: bytes) -> CuckooTable:
    """Cuckoo-insert under a seed that is already fixed (e.g. sent to the peer): one attempt,
    :class:`CuckooError` on failure (probability <= 2^-40 with :func:`table_size` bins)."""
    placed = insert(locations(digest, seed, bins), bins)
    if placed is None:
        raise CuckooError(f"no cuckoo table for {len(digest)} items in {bins} bins")
    table, which = placed
    return CuckooTable(seed, bins, table, which, 1)


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


def failure_bits(n: int, bins: int) -> float:
    """``-log2`` of the failure probability of a stash-less 3-hash table of ``bins`` bins for
    ``n`` items by the fit of :func:`expansion`: the statistical security of a table size."""
    nn = math.log2(max(n, 2))
    a = 123.5 / 2 * (1 + math.erf((nn - 6.3) / (2.3 * math.sqrt(2))))
    b = -130 / 2 * (1 + math.erf((nn - 6.45) / (2.18 * math.sqrt(2)))) - nn
    return a * bins / max(n, 1) + b
