"""Two-party RR22 PSI (VOLE + OKVS), semi-honest.

Raghuraman and Rindal, "Blazing Fast PSI from Improved OKVS and Subfield VOLE" (CCS 2022,
ePrint 2022/320), Fig. 4 in its semi-honest form, with the OKVS of :mod:`.rr22_okvs` and the
silent subfield VOLE of :mod:`.vole`; structured like the authors' volePSI ``RsPsi``/``RsOprf``
(our own code). The requester ``R`` is the OPRF receiver and learns the intersection; the
provider ``P`` is the OPRF sender.

1. Items become 128-bit item keys exactly as in :mod:`.kkrt` (short items encoded, long ones
   hashed; duplicates removed). Both sides know both set sizes after the handshake; the OKVS
   is sized for ``n_R`` keys (``M`` ~ 1.28 ``n_R`` cells) and the VOLE has length ``M``.
2. ``R`` draws the 32-byte OKVS hash seed and sends it. Each key ``x`` gets its OKVS row and a
   64-bit value ``H(x)`` (:func:`.rr22_okvs.rows`).
3. Silent VOLE of length ``M`` (:mod:`.vole`): ``P`` gets ``delta`` and ``B``, ``R`` gets
   ``A`` (64-bit entries) and ``C`` with ``C = B + A delta``. Meanwhile, in a second thread,
   ``R`` solves the OKVS ``P_okvs`` with ``Decode(P_okvs, x) = H(x)`` for its keys, and ``P``
   groups its keys by OKVS cluster and hashes them to their rows (both parties decode in
   cluster order, one cluster's cells in cache at a time).
4. ``R`` sends ``A' = P_okvs + A`` (``M`` x 8 bytes). Its OPRF outputs are
   ``F(x) = H_o(H(x), Decode(C, x))``, computed (and indexed) in the second thread meanwhile.
5. ``P`` computes, for each of its keys ``y``, ``Decode(B, y) + delta (Decode(A', y) + H(y))``
   (one 24-byte-row decode of ``B || A'``, one table multiplication by ``delta``), hashes it
   with ``H_o(H(y), .)`` to ``L`` bytes and sends the tags in a secret random order of its items
   (drawn apart from the cluster order, which depends on the items).
   Since ``Decode`` is linear, that value is ``Decode(C, y) + delta (Decode(P_okvs, y) + H(y))``:
   ``F(y)`` for ``y`` in ``R``'s set, and for any other ``y`` a value offset by ``delta z`` with
   ``z`` a non-zero (except with probability ``2^-64``) 64-bit value, unpredictable to ``R``.
6. ``R`` outputs its items whose tag is among ``P``'s; with ``reveal_to_provider`` it sends the
   sorted list positions of the matched tags and ``P`` outputs those items.

``H_o`` is fixed-key MMO under its own public key and domain, tweaked by ``H(x)``,
modelled as a random oracle (as volePSI does with its fixed-key AES hash). Tags:
``L = ceil((40 + log2 n_R + log2 n_P) / 8)`` bytes, so any false match has probability
``<= 2^-40`` (11 bytes at 2^24 x 2^24). ``z`` needs ``n_P 2^-64 <= 2^-40`` for
``n_P <= 2^24``: the 64-bit subspace suffices. Correctness fails only with those probabilities
or an OKVS failure (``<= 2^-40``, raised as :class:`.rr22_okvs.OkvsError`, never a wrong
result).

Messages after the header exchange (turn-based, so the transcript hash is equal on both ends)::

    R -> P   OKVS seed (32 bytes)
    R -> P   base-OT point A                  \\
    P -> R   128 base-OT points B_i            } correlated OT (IKNP without the hash)
    R -> P   u (128 x cot bits)               /
    P -> R   per VOLE instance (one per 2^18 cells): code seed, masked GGM level sums,
             tree corrections
    R -> P   after each instance but the last: an empty acknowledgement (a provider's node
             holds what it sends until it next receives; without them the instances would
             leave together after the last one, and the requester would wait for the VOLE)
    R -> P   A' (M x 8 bytes)
    P -> R   tags (n_P x L bytes)
    R -> P   matched positions (only with reveal_to_provider)

Communication (measured, both directions): 31.2 MB at 2^20 x 2^20, 238 bits per item --
``R`` sends ``8 M`` + the IKNP matrix (~8 MB for the VOLE instances' ~500K correlated OTs),
``P`` ~2 MB of VOLE messages + ``10 n_P`` of tags (RR22 reports 251 bits; KKRT here sends
~1000); at 2^16 the fixed VOLE cost (>= 848 noise trees, 64 correlated OTs each for the noise
values) makes it 429.

Time (measured at 2^20 x 2^20 on a shared 2-core VM; the non-cryptographic kernels compiled by
numba, :mod:`.jit`): between two nodes 1.10-1.94 s against KKRT's 2.81-4.45 s in the same runs
(ratio 1.8-3.2) at load averages of 2-5, and 2.2-4.2 s (ratio 1.0-2.2) at 5-9, where our
processes get a fraction of the two cores (twelve runs, docs/benchmarks.md). Both parties
together spend 1.9-2.4 s of process CPU in the protocol (requester 1.1-1.4, provider 0.8-1.0,
the node's channel included): on two cores that alone bounds the wall time near 1 s, before the
requester's output (the node's list of 2^19 strings, ~0.1 s). Per party (thread CPU, one node
run at load ~3.5): requester -- item keys 0.05, base and correlated OTs 0.05 (0.17 s wall:
messages both ways), VOLE 0.43 (punctured GGM 0.12, the compression of its six instances 0.25
in a second thread), OKVS 0.17, own tags and index 0.14 and the bytes order 0.09 while the
provider decodes, lookups ~0.1; provider -- item keys 0.06, VOLE 0.32 (GGM 0.1, compression
0.16 in a second thread), its keys' rows and order 0.19 in the second thread, decoding and tags
0.14. Under load the shares are 2-3x the kernels' own times: with both parties on two cores the
expander's random gathers contend for the shared L3 and memory. A provider's node holds what it
sends until it next receives (:mod:`privledger.node.release`); before the requester
acknowledged each VOLE instance, all six left together after the last one and the requester
started its VOLE ~0.35 s late. At 2^24: 42.0 s between two nodes at load 3-4 with 44 s of CPU
for both node processes (46.7 s at load 4-7 before the acknowledgements), 26 s in process, peak
RSS 3.3 and 3.5 GB per node (docs/benchmarks.md).

Security model: semi-honest (honest-but-curious) parties, kappa = 128 computational and
lambda = 40 statistical security; LPN with an expand-accumulate code and regular noise
(:mod:`.vole`), fixed-key AES as ideal permutations, CDH in the ROM for the base OTs. Not secure
against a malicious peer (RR22's malicious variant needs extra checks that are not here).

Leakage -- what each side learns:

- requester: the intersection and the provider's set size ``n_P`` (after de-duplication).
- provider: the requester's set size ``n_R`` (it fixes ``M``); with ``reveal_to_provider``
  also the intersection; nothing else (``A'`` is one-time padded by the pseudorandom ``A``).
- both: that the peer runs this protocol version and mode. An OKVS failure (``<= 2^-40``)
  aborts the run, which the peer sees.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.channel import (
    Channel,
    ChannelError,
    recv_exact,
    recv_records,
    send_records,
)
from privledger.protocols.psi import gf128, jit, keyed, ot, rr22_okvs, vole
from privledger.protocols.psi.common import (
    Header,
    PsiResult,
    Role,
    check_role,
    handshake,
)

logger = logging.getLogger(__name__)

PROTOCOL = "privledger/rr22-psi"
VERSION = 2  # 2: VOLE instances acknowledged
STAT_SECURITY = 40
OUTPUT_DOMAIN = 0x52523232  # "RR22": the tweak domain of H_o
OUTPUT_KEY = bytes.fromhex("5c1d8e2a7f40b3961e6ad0c27b95f348")  # public; H_o's permutation
LOOKUP_SPLIT = 1 << 17  # from this many peer tags, half are looked up in the second thread
PARTITION_BITS = 12  # ~2^PARTITION_BITS tags per partition of a TagIndex
PEER_CHUNK = 1 << 21  # peer tags partitioned at a time by TagIndex.matches (at least)
_PACKED_WIDTH = 12  # tags up to this many bytes share their row's second word with the index
_STREAM_CHUNK = 1 << 20  # bytes of keystream per AES call in _random_order

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

__all__ = [
    "PROTOCOL",
    "VERSION",
    "TagIndex",
    "run_keys",
    "run_psi",
    "run_psi_column",
    "tag_bytes",
]


def tag_bytes(requester_size: int, provider_size: int) -> int:
    """Tag length ``L`` so that ``n_R n_P 2^(-8 L) <= 2^-40``."""
    bits = STAT_SECURITY + math.log2(max(requester_size, 1)) + math.log2(max(provider_size, 1))
    return min(ot.BLOCK, math.ceil(bits / 8))


def output_hash(values: U8, item_hashes: U64, width: int) -> U8:
    """``H_o(H(x), v)`` truncated to ``width`` bytes: ``(n, 16)`` values, tweaked by the items'
    64-bit OKVS hash values ``H(x)`` (binding each output to its item, as RR22's
    ``H(Decode(C, x), x)``) -> ``(n, width)``.

    ``H_o(t, v) = pi(x) xor x`` with ``x = v xor (t || OUTPUT_DOMAIN)`` and ``pi`` AES-128
    under the public :data:`OUTPUT_KEY` (fixed-key MMO as in :func:`.ot.mmo_hash`)."""
    out = np.empty((len(values), width), dtype=np.uint8)
    _hash_into(_hash_inputs(values, item_hashes), out, 0)
    return out


def _hash_inputs(values: U8, item_hashes: U64) -> U64:
    """:func:`output_hash`'s ``x = v xor (t || OUTPUT_DOMAIN)``: ``(n, 2)`` words."""
    n = len(values)
    x = np.empty((n, 2), dtype="<u8")
    x[:, 0] = item_hashes
    x[:, 1] = OUTPUT_DOMAIN
    x ^= np.ascontiguousarray(values).view("<u8").reshape(n, 2)
    return x


def _hash_into(x: U64, tags: U8, at: int, places: I64 | None = None) -> None:
    """``pi(x) xor x`` (:func:`output_hash`) of the ``(n, 2)`` words ``x``, its first
    ``tags.shape[1]`` bytes written to rows ``at .. at + n`` of ``tags``, or to rows ``places``.
    AES runs into a buffer with the 16 bytes of slack that ``update_into`` asks for."""
    n = len(x)
    out = np.empty(16 * n + 16, dtype=np.uint8)
    encryptor = Cipher(algorithms.AES(OUTPUT_KEY), modes.ECB()).encryptor()
    encryptor.update_into(x.view(np.uint8).reshape(-1).data, out.data)
    where = places if places is not None else np.zeros(0, dtype=np.int64)
    _put_hashes(out[: 16 * n].reshape(n, 16), x.view(np.uint8).reshape(n, 16), tags, at, where)


@jit.kernel
def _put_hashes(encrypted: U8, x: U8, tags: U8, at: int, places: I64) -> None:
    """:func:`_hash_into`'s kernel: ``encrypted xor x``, truncated, into its rows of ``tags``."""
    width = tags.shape[1]
    scatter = len(places) > 0
    for i in range(len(x)):
        row = places[i] if scatter else at + i
        for b in range(width):
            tags[row, b] = encrypted[i, b] ^ x[i, b]


@jit.kernel
def _tag_inputs(decoded: U64, item_hashes: U64, tables: U64, domain: np.uint64, x: U64) -> None:
    """The provider's :func:`output_hash` inputs from its decoded ``B || A'`` rows (three words:
    ``Decode(B, y)`` and ``Decode(A', y)``): ``Decode(B, y) + delta (Decode(A', y) + H(y))``,
    the product by table lookups (:class:`.gf128.FixedMultiplier`'s tables of ``delta``), plus
    ``(H(y) || domain)``."""
    for i in range(len(x)):
        hashed = item_hashes[i]
        z = decoded[i, 2] ^ hashed
        low = high = np.uint64(0)
        for b in range(tables.shape[0]):
            byte = np.int64((z >> np.uint64(8 * b)) & np.uint64(255))
            low ^= tables[b, byte, 0]
            high ^= tables[b, byte, 1]
        x[i, 0] = decoded[i, 0] ^ low ^ hashed
        x[i, 1] = decoded[i, 1] ^ high ^ domain


class TagIndex:
    """The requester's tags, indexed for lookups by a radix-partitioned hash join: the tags go
    to ``2^p`` partitions by the low ``p`` bits of their first word (zero padded, little-endian;
    tags are pseudorandom, so those bits are the hash) with ~2^12 tags each, every partition
    with its own open-addressing table (linear probing, at most half full) of the positions of
    its tags. Peer tags are partitioned the same way and each partition is probed against its
    own-tag partition: its rows and table (~160 KB) stay in the L2 cache, where one table of
    all tags took a cache miss per lookup and another to compare a candidate (~2x the CPU at
    2^20). A row is the tag as two words (zero padded) and its index, the index in the second
    word's high half where the tag fits (up to 12 bytes: 11 at 2^24 x 2^24); built and searched
    by compiled kernels (:mod:`.jit`); ~24 bytes per tag. Peer tags are partitioned and probed
    :data:`PEER_CHUNK` (or a quarter of the own tags, if more) at a time."""

    def __init__(self, tags: U8) -> None:
        if tags.ndim != 2 or not 1 <= tags.shape[1] <= ot.BLOCK or len(tags) >= 1 << 32:
            raise ValueError("need (n, 1..16) tags, n < 2^32")
        self.width = tags.shape[1]
        self._bits = max(0, (len(tags) - 1).bit_length() - PARTITION_BITS)
        self._starts, self._rows = _partitioned(np.ascontiguousarray(tags), self._bits)
        most = int(np.diff(self._starts).max()) if len(tags) else 0
        self._slots_per = max(2, 2 * most)
        self._slots = np.zeros(self._slots_per << self._bits, dtype=np.uint32)
        _index_partitions(self._starts, self._rows, self._bits, self._slots, self._slots_per)

    def matches(self, peer: U8) -> tuple[I64, I64]:
        """The pairs of equal tags: the own tags' indices and the peer tags' (in no order)."""
        if peer.ndim != 2 or peer.shape[1] != self.width:
            raise ValueError("peer tags of another width")
        step = max(PEER_CHUNK, len(self._rows) // 4)
        mine: list[I64] = []
        theirs: list[I64] = []
        for lo in range(0, len(peer), step):
            chunk = np.ascontiguousarray(peer[lo : lo + step])
            starts, rows = _partitioned(chunk, self._bits)
            own = np.empty(len(chunk), dtype=np.int64)
            their = np.empty(len(chunk), dtype=np.int64)
            count = _probe_partitions(
                self._starts,
                self._rows,
                self._bits,
                self._slots,
                self._slots_per,
                starts,
                rows,
                own,
                their,
            )
            mine.append(own[:count])
            their[:count] += lo
            theirs.append(their[:count])
        if len(mine) == 1:
            return mine[0], theirs[0]
        if not mine:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(mine), np.concatenate(theirs)


def _partitioned(tags: U8, bits: int) -> tuple[I64, U64]:
    """``tags`` as rows (first word, second word, index; the index in the second word's high
    half if the tag has at most 12 bytes) grouped by the low ``bits`` bits of the first word,
    and where each partition starts (``2^bits + 1``)."""
    starts = np.zeros((1 << bits) + 1, dtype=np.int64)
    rows = np.empty((len(tags), 2 if tags.shape[1] <= _PACKED_WIDTH else 3), dtype=np.uint64)
    _partition_tags(tags, bits, starts, rows)
    return starts, rows


@jit.kernel
def _partition_tags(tags: U8, bits: int, starts: I64, rows: U64) -> None:
    """:func:`_partitioned`'s kernel: a count of each partition's tags, then every tag's row
    written at the next place of its partition (``starts`` all zero on entry)."""
    count, width = tags.shape
    mask = np.uint64((1 << bits) - 1)
    for i in range(count):
        word = np.uint64(0)
        for b in range(min(8, width)):
            word |= np.uint64(tags[i, b]) << np.uint64(8 * b)
        starts[np.int64(word & mask) + 1] += 1
    for p in range(len(starts) - 1):
        starts[p + 1] += starts[p]
    places = starts[:-1].copy()
    for i in range(count):
        first = np.uint64(0)
        second = np.uint64(0)
        for b in range(min(8, width)):
            first |= np.uint64(tags[i, b]) << np.uint64(8 * b)
        for b in range(8, width):
            second |= np.uint64(tags[i, b]) << np.uint64(8 * (b - 8))
        part = np.int64(first & mask)
        at = places[part]
        places[part] = at + 1
        rows[at, 0] = first
        if rows.shape[1] == 2:
            rows[at, 1] = second | (np.uint64(i) << np.uint64(32))
        else:
            rows[at, 1] = second
            rows[at, 2] = np.uint64(i)


@jit.kernel
def _index_partitions(
    starts: I64, rows: U64, bits: int, slots: npt.NDArray[np.uint32], per: int
) -> None:
    """:class:`TagIndex`'s tables: partition ``p``'s tag at row ``j`` in the first free slot
    of the ``per`` slots from ``p per``, from the slot its first word's bits above the
    partition's hash to (multiply-shift), as ``j - starts[p] + 1``."""
    size = np.uint64(per)
    low = np.uint64(0xFFFFFFFF)
    for p in range(len(starts) - 1):
        base = p * per
        for j in range(starts[p], starts[p + 1]):
            at = np.int64((((rows[j, 0] >> np.uint64(bits)) & low) * size) >> np.uint64(32))
            while slots[base + at] != 0:
                at += 1
                if at == per:
                    at = np.int64(0)
            slots[base + at] = j - starts[p] + 1


@jit.kernel
def _probe_partitions(
    starts: I64,
    rows: U64,
    bits: int,
    slots: npt.NDArray[np.uint32],
    per: int,
    peer_starts: I64,
    peer_rows: U64,
    own: I64,
    theirs: I64,
) -> int:
    """:meth:`TagIndex.matches`'s kernel: each peer row probed in its partition's table from
    its slot until an empty one, comparing both words; the indices of a match written to
    ``own`` and ``theirs``. Returns the number of matches."""
    size = np.uint64(per)
    low = np.uint64(0xFFFFFFFF)
    packed = rows.shape[1] == 2
    found = 0
    for p in range(len(starts) - 1):
        base = p * per
        first = starts[p] - 1
        for j in range(peer_starts[p], peer_starts[p + 1]):
            word = peer_rows[j, 0]
            at = np.int64((((word >> np.uint64(bits)) & low) * size) >> np.uint64(32))
            while True:
                slot = slots[base + at]
                if slot == 0:
                    break
                k = first + np.int64(slot)
                if rows[k, 0] != word:
                    pass
                elif packed and (rows[k, 1] ^ peer_rows[j, 1]) & low == 0:
                    own[found] = np.int64(rows[k, 1] >> np.uint64(32))
                    theirs[found] = np.int64(peer_rows[j, 1] >> np.uint64(32))
                    found += 1
                    break
                elif not packed and rows[k, 1] == peer_rows[j, 1]:
                    own[found] = np.int64(rows[k, 2])
                    theirs[found] = np.int64(peer_rows[j, 2])
                    found += 1
                    break
                at += 1
                if at == per:
                    at = np.int64(0)
    return found


def _random_order(n: int) -> I64:
    """A uniformly random permutation of ``0 .. n - 1`` (up to ties among ``64 - log2 n``
    random bits, probability below ``n^2 2^-(65 - log2 n)``, which only keep two items in input
    order): a plain sort of random keys carrying the index in their low bits (~2x faster than
    an argsort at 2^20). The keys are AES-128-CTR under a key from :mod:`secrets` (a PRG, as
    the GGM trees' and the correlated OTs' expansions): ``secrets`` itself gives ~0.27 GB/s
    here, 0.03 s of the provider's CPU at 2^20, AES ~10x more."""
    bits = np.uint64(max(1, (max(n, 1) - 1).bit_length()))
    stream = np.empty(n + 2, dtype=np.uint64)  # 16 bytes of slack for update_into
    encryptor = Cipher(algorithms.AES(secrets.token_bytes(16)), modes.CTR(bytes(16))).encryptor()
    out = stream.view(np.uint8)
    zeros = bytes(min(8 * n, _STREAM_CHUNK))  # encrypted a chunk at a time: no 8n-byte input
    for lo in range(0, 8 * n, _STREAM_CHUNK):
        hi = min(lo + _STREAM_CHUNK, 8 * n)
        encryptor.update_into(zeros[: hi - lo], out[lo : hi + 16].data)
    keys = stream[:n]
    keys >>= bits
    keys <<= bits
    keys |= np.arange(n, dtype=np.uint64)
    keys.sort()
    keys &= (np.uint64(1) << bits) - np.uint64(1)
    return keys.view(np.int64)


# --- public entry points (the same contract as kkrt) ----------------------------------------


def run_psi(
    channel: Channel,
    items: Sequence[bytes],
    *,
    role: Role,
    reveal_to_provider: bool = False,
    workers: int | None = None,
    timeout: float | None = None,
) -> PsiResult:
    """Run semi-honest RR22-PSI with the peer at the other end of ``channel``.

    Same contract as :func:`.kkrt.run_psi`: ``items`` may contain duplicates (removed first);
    the requester learns the intersection (sorted, distinct), the provider only with
    ``reveal_to_provider``; ``workers`` is accepted for API parity and ignored."""
    del workers
    return keyed.run_items(
        run_keys,
        "rr22-psi",
        channel,
        items,
        role=role,
        reveal_to_provider=reveal_to_provider,
        timeout=timeout,
    )


def run_psi_column(
    channel: Channel,
    column: Any,
    *,
    role: Role,
    reveal_to_provider: bool = False,
    timeout: float | None = None,
) -> keyed.ColumnPsiResult:
    """:func:`run_psi` over an Arrow binary or string array without nulls (the interface of
    :func:`.kkrt.run_psi_column`, for the node's runner)."""
    return keyed.run_column(
        run_keys,
        "rr22-psi",
        channel,
        column,
        role=role,
        reveal_to_provider=reveal_to_provider,
        timeout=timeout,
    )


def run_keys(
    channel: Channel,
    keys: U8,
    *,
    role: Role,
    reveal_to_provider: bool = False,
    timeout: float | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> tuple[I64 | None, int]:
    """RR22-PSI on distinct item keys ``(n, 16)`` (header exchange included): the indices of
    the matched keys, each once and in no particular order (``None`` when this party learns no
    output; the caller puts them in the items' order, :func:`.keyed.output_order`) and the
    peer's size. ``while_waiting`` runs (once, if this party learns the output) while it waits for
    the peer: the requester's while the provider decodes, the provider's before the
    matched positions arrive."""
    check_role(role)
    peer_size = handshake(
        channel, Header(PROTOCOL, VERSION, role, reveal_to_provider, len(keys)), timeout
    )
    learns = role == "requester" or reveal_to_provider
    if len(keys) == 0 or peer_size == 0:
        return (np.zeros(0, dtype=np.int64) if learns else None), peer_size
    idle = while_waiting if while_waiting is not None else (lambda: None)
    if role == "requester":
        return _run_requester(channel, keys, peer_size, reveal_to_provider, timeout, idle), (
            peer_size
        )
    return _run_provider(channel, keys, peer_size, reveal_to_provider, timeout, idle), peer_size


def _run_requester(
    channel: Channel,
    keys: U8,
    peer_size: int,
    reveal: bool,
    timeout: float | None,
    idle: Callable[[], object],
) -> I64:
    n = len(keys)
    params = rr22_okvs.OkvsParams.for_items(n)
    seed = secrets.token_bytes(rr22_okvs.SEED_BYTES)
    channel.send(seed)

    # The OKVS is solved in a second thread while this one runs the VOLE: both are compiled or
    # AES kernels that release the GIL (and this thread keeps reading the provider's VOLE
    # messages). Then that thread computes this party's own tags while ``A'`` is on its way
    # and the provider decodes, and this one runs ``idle`` (the caller's own work while it
    # waits): during the VOLE both cores are busy, afterwards this thread would only wait.
    width = tag_bytes(n, peer_size)
    pool = ThreadPoolExecutor(1, thread_name_prefix="rr22-okvs")
    try:
        grouping = pool.submit(_clustered, params, seed, keys)
        solving = pool.submit(
            lambda: rr22_okvs.encode(
                params, seed, grouping.result()[2], None, grouping.result()[:2], clustered=True
            )
        )
        correlation = vole.vole_receive(channel, params.size, timeout)
        table = solving.result()
        table ^= correlation.a
        order, _, clustered = grouping.result()
        tagging = pool.submit(_own_index, params, seed, clustered, correlation.c, width)
        del clustered
        del correlation
        send_records(channel, table)
        del table
        idle()  # while the provider decodes (off the VOLE, where both cores are busy)
        own = tagging.result()
        peer = recv_records(channel, width, timeout, count=peer_size)
        # the provider is done: half of the lookups in the second thread, on the other core
        half = len(peer) // 2 if len(peer) >= LOOKUP_SPLIT else len(peer)
        second = pool.submit(own.matches, peer[half:])
        mine, theirs = own.matches(peer[:half])
        later, later_theirs = second.result()
    finally:
        pool.shutdown(cancel_futures=True)
    if reveal:
        positions = np.sort(np.concatenate((theirs, later_theirs + half))).astype(">u8")
        send_records(channel, positions.view(np.uint8).reshape(-1, 8))
    return order[np.concatenate((mine, later))]  # unsorted: the caller orders them by bytes


def _clustered(params: rr22_okvs.OkvsParams, seed: bytes, keys: U8) -> tuple[I64, I64, U8]:
    """:func:`.rr22_okvs.by_cluster` of the keys and the keys in that order (the encoding and
    the own tags read them a cluster at a time; one gather for both)."""
    order, starts = rr22_okvs.by_cluster(params, seed, keys)
    return order, starts, ot.take_rows(keys, order)


def _own_index(params: rr22_okvs.OkvsParams, seed: bytes, keys: U8, c: U8, width: int) -> TagIndex:
    """The requester's tags ``H_o(H(x), Decode(C, x))`` of ``keys`` (in cluster order: the
    decoding reads one cluster's cells at a time), indexed."""
    decoder = rr22_okvs.Decoder(params, c)
    tags = np.empty((len(keys), width), dtype=np.uint8)
    for lo in range(0, len(keys), rr22_okvs.HASH_CHUNK):
        hashed = rr22_okvs.rows(params, seed, keys[lo : lo + rr22_okvs.HASH_CHUNK])
        _hash_into(_hash_inputs(decoder.decode_rows(hashed), hashed.value), tags, lo)
    return TagIndex(tags)


def _grouped_rows(
    params: rr22_okvs.OkvsParams, seed: bytes, keys: U8
) -> tuple[I64, list[rr22_okvs.Rows]]:
    """The provider's keys in cluster order (the decoding reads one cluster's cells at a time)
    and their rows in that order, in chunks of :data:`.rr22_okvs.HASH_CHUNK`."""
    order = rr22_okvs.by_cluster(params, seed, keys)[0]
    return order, rr22_okvs.rows_in_chunks(params, seed, ot.take_rows(keys, order))


def _run_provider(
    channel: Channel,
    keys: U8,
    peer_size: int,
    reveal: bool,
    timeout: float | None,
    idle: Callable[[], object],
) -> I64 | None:
    n = len(keys)
    params = rr22_okvs.OkvsParams.for_items(peer_size)
    seed = recv_exact(channel, rr22_okvs.SEED_BYTES, timeout, "OKVS seed")
    # the keys' rows in cluster order and the secret random order of their tags, in a second
    # thread during the VOLE (B goes straight into the first 16 bytes of the rows of the table
    # decoded below)
    table = np.empty((params.size, ot.BLOCK + vole.SUBFIELD_BYTES), dtype=np.uint8)
    with ThreadPoolExecutor(1, thread_name_prefix="rr22-rows") as pool:
        preparing = pool.submit(_grouped_rows, params, seed, keys)
        # (not after the VOLE, while the requester compresses its last instance: ~0.08 s at
        # 2^20 fits there, but 1.4 s at 2^24 would delay the decoding)
        shuffling = pool.submit(_random_order, n)
        correlation = vole.vole_send(channel, params.size, timeout, table[:, : ot.BLOCK])
        order, hashed = preparing.result()
        places = shuffling.result()  # the tag of key order[i] is sent at places[i]
    multiply = gf128.FixedMultiplier(correlation.delta, vole.SUBFIELD_BYTES)
    del correlation
    table[:, ot.BLOCK :] = recv_records(channel, vole.SUBFIELD_BYTES, timeout, count=params.size)
    decoder = rr22_okvs.Decoder(params, table)
    width = tag_bytes(peer_size, n)
    tags = np.empty((n, width), dtype=np.uint8)
    at = 0
    domain = np.uint64(OUTPUT_DOMAIN)
    for chunk in hashed:
        # Decode(B, y) + delta (Decode(A', y) + H(y)), from one decode of B || A'
        decoded = decoder.decode_rows(chunk).view(np.uint64)
        x = np.empty((len(decoded), 2), dtype=np.uint64)
        _tag_inputs(decoded, chunk.value, multiply.tables, domain, x)
        _hash_into(x, tags, 0, places[at : at + len(x)])
        at += len(x)
    del hashed, decoder, table
    channel.delivering()  # the tags give the requester its output
    send_records(channel, tags)
    if not reveal:
        return None
    idle()
    matched = recv_records(channel, 8, timeout).view(">u8").reshape(-1).astype(np.int64)
    if matched.size and (matched.min() < 0 or matched.max() >= n):
        raise ChannelError("peer sent a matched position out of range")
    sent = np.empty(n, dtype=np.int64)
    sent[places] = order  # the key whose tag went to each position
    return sent[np.unique(matched)]
