"""Two-party KKRT PSI (batched OPRF from OT extension), semi-honest.

Construction: Kolesnikov, Kumaresan, Rosulek and Trieu, "Efficient Batched Oblivious PRF with
Applications to Private Set Intersection" (CCS 2016, ePrint 2016/799), structured like libOTe's
``KkrtNcoOtReceiver/Sender`` + ``KkrtPsiReceiver/Sender``; our own code. The requester ``R`` is
the OPRF receiver and learns the intersection; the provider ``P`` is the OPRF sender.

1. Items are mapped to 128-bit *item keys* ``k(x)`` (:func:`.cuckoo.item_keys`: items of at most
   15 bytes are encoded injectively -- zero padded, length in byte 15 -- longer items are hashed
   with BLAKE2b-128 personalised with :data:`.keyed.ITEM_KEY_DOMAIN` and flagged), all at once with
   numpy; duplicates are removed on the keys (:func:`.cuckoo.distinct_keys`).
2. ``R`` draws the hash seed, sends it (so that ``P`` computes its bins while the base OTs
   run) and -- while ``P`` derives its base-OT keys in step 3 -- cuckoo-hashes its ``n_R``
   keys into ``m = table_size(n_R)`` bins (3 hash functions, stash-less, ``m ~ 1.54 n_R`` at 2^20;
   parameters and sources in :mod:`.cuckoo`); if no table exists for that seed (probability
   <= 2^-40) it raises :class:`~.cuckoo.CuckooError`. Bin ``j`` holding ``x`` placed by hash
   function ``i`` gets OPRF input ``r_j = k(x) | i << 4`` in byte 15
   (:func:`.cuckoo.indexed_keys`, injective in ``(x, i)``); empty bins get random inputs.
3. 128 Chou-Orlandi base OTs (on secp256k1), IKNP-extended to 512 random OTs in which ``P``
   is the *receiver* with random choice bits ``s`` (roles as in KKRT; details in :mod:`.ot`).
   ``P`` draws a fresh AES key for the pseudorandom code of width 512 and sends it.
4. ``R`` sends the KKRT matrix ``u`` (512 x ``m`` bits) in chunks of ``c = chunk_bins(m)`` bins
   (``m / 8`` rounded up to a multiple of 2048, clamped to 16384 .. :data:`CHUNK_BINS`: at least
   8 chunks when ``m`` allows, so that ``P`` evaluates one chunk while ``R`` encodes the next),
   encoding chunk by chunk; it obtains ``F(j, r_j)`` for its occupied bins and ``P`` obtains the
   key to evaluate ``F(j, .)``.
5. ``P`` (simple hashing) computes, for each of its items ``y`` and each ``i`` in 0..2,
   ``F(h_i(y), k(y) | i << 4)`` truncated to ``L`` bytes -- chunk by chunk as the rows of ``u``
   arrive, so it never holds more than one chunk of rows -- and sends three lists (one per
   ``i``), each in one secret random order of its items (the same order for the three lists).
6. ``R`` outputs the ``x`` whose tag ``F(j, r_j)`` appears in list ``i`` (``i`` = the function
   that placed ``x``); matching sorts 64-bit tag prefixes (with the list position in the low
   bits) and compares the whole tag of every prefix match.
7. With ``reveal_to_provider``, ``R`` sends the sorted, distinct positions of the matched tags
   in ``P``'s list order (the same order for the three lists) and ``P`` outputs the
   corresponding items. Version 3 sent ``i * n_P + position``: which hash function placed each
   match, which depends on ``R``'s other items (cuckoo evictions); version 4 sends positions
   only (``tests/privacy/test_set_operations.py``).

``F(j, r) = H(j, row_j(T0))`` with ``H`` a fixed-key-AES correlation-robust hash tweaked by the
bin index (see :mod:`.ot`). Tag length ``L = ceil((40 + log2 n_R + log2 n_P) / 8)`` bytes (at
most 16): each of ``R``'s tags is compared with the ``n_P`` tags of one list, so the chance of any
false match is at most ``n_R n_P 2^(-8 L) <= 2^-40``. That 2^-40 false-positive chance (and a
124-bit BLAKE2b collision between items longer than 15 bytes) is the only way the output can be
wrong; a cuckoo failure raises :class:`~.cuckoo.CuckooError`, never a wrong result.

Message sequence after the header exchange (side a first, as in :mod:`.ecdh`)::

    R -> P   cuckoo seed (16 bytes)
    P -> R   base-OT point A                       \\
    R -> P   128 base-OT points B_i                 } IKNP, 512 random OTs
    P -> R   u' (128 x 512 bits)                   /
    P -> R   code key (16 bytes)
    R -> P   u in ceil(m / c) messages (512 x chunk bits each, 64 bytes per bin)
    P -> R   tags (3 n_P records of L bytes)
    R -> P   matched positions (only with reveal_to_provider)

The protocol is turn-based, so the channel's transcript hash is equal on both ends.
Communication: ``R`` sends ~64 m + 4 KiB bytes (~99 n_R at 2^20), ``P`` sends ~3 L n_P + 8 KiB.
Computation is vectorised numpy over whole chunks (no per-item Python beyond reading the input
list and building the output list, and none at all with :func:`run_psi_column`, which takes and
returns Arrow arrays); memory is O(n) arrays of a few dozen bytes per item plus one chunk of the
bit matrices, never the whole ``m x 512`` matrix.
The building blocks (OPRF setup, requester encoding, provider evaluation, matching) are public
so that :mod:`.buckets` can run many PSIs over one OPRF setup.

Security model: semi-honest (honest-but-curious) parties, kappa = 128 computational and
lambda = 40 statistical security; CDH in the random-oracle model for the base OTs, AES as a PRF
(PRG, code) and fixed-key AES as an ideal permutation (hash); not secure against a malicious
peer (e.g. one that deviates from the protocol or lies about its set or its results). The item
keys need no secrecy (everything the peer sees about them passes through the OPRF).

Leakage -- what each side learns:

- requester: the intersection and the provider's set size ``n_P`` (after de-duplication);
  which of its own items matched through which hash function (nothing about the provider).
- provider: the requester's set size ``n_R`` (after de-duplication; it fixes ``m``); with
  ``reveal_to_provider`` also the intersection (its own matching items, as list positions);
  nothing else.
- both: that the peer runs this protocol version and mode (header in clear over the channel;
  the transport encrypts it on the wire). A cuckoo failure (probability <= 2^-40) aborts the
  run, which the peer sees.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privledger.protocols.channel import (
    Channel,
    ChannelError,
    recv_exact,
    recv_records,
    send_records,
)
from privledger.protocols.psi import cuckoo, keyed, ot
from privledger.protocols.psi.common import (
    Header,
    PsiResult,
    Role,
    check_role,
    handshake,
    random_permutation,
)

logger = logging.getLogger(__name__)


PROTOCOL = "privledger/kkrt-psi"
VERSION = 4  # 3: base OTs on secp256k1; 4: matched positions without the hash function
STAT_SECURITY = 40
CHUNK_BINS = 1 << 17  # most bins per u message and per processing chunk (a multiple of 128)
MIN_CHUNK_BINS = 1 << 14

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

__all__ = [
    "PROTOCOL",
    "VERSION",
    "OwnTags",
    "ProviderPlan",
    "ReceiverSetup",
    "SenderSetup",
    "match_tags",
    "provider_plan",
    "provider_tags",
    "requester_encode",
    "run_keys",
    "run_psi",
    "run_psi_column",
    "setup_provider",
    "setup_requester",
    "tag_bytes",
]


def run_psi(
    channel: Channel,
    items: Sequence[bytes],
    *,
    role: Role,
    reveal_to_provider: bool = False,
    workers: int | None = None,
    timeout: float | None = None,
) -> PsiResult:
    """Run semi-honest KKRT-PSI with the peer at the other end of ``channel``.

    Same contract as :func:`privledger.protocols.psi.ecdh.run_psi`: ``items`` may contain
    duplicates (removed first); the requester learns the intersection, the provider only with
    ``reveal_to_provider``. ``workers`` is accepted for API parity and ignored (the work is
    vectorised in this process). ``timeout`` bounds each wait for a peer message in seconds.
    """
    del workers
    return keyed.run_items(
        run_keys,
        "kkrt-psi",
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
    """:func:`run_psi` over an Arrow binary or string array without nulls (e.g. a CSV column as
    pyarrow reads it): no Python object per item on the way in or out, so inputs of 2^24 items
    fit in memory; same protocol and messages."""
    return keyed.run_column(
        run_keys,
        "kkrt-psi",
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
    """KKRT-PSI on distinct item keys ``(n, 16)`` (header exchange included).

    Returns the ascending indices of the matched keys (``None`` when this party learns no
    output) and the peer's set size. ``while_waiting`` is called (once, if the party learns the
    output) just before it waits for the peer's last message: local work to overlap with it.
    """
    check_role(role)
    peer_size = handshake(
        channel, Header(PROTOCOL, VERSION, role, reveal_to_provider, len(keys)), timeout
    )
    learns = role == "requester" or reveal_to_provider
    empty = np.zeros(0, dtype=np.int64) if learns else None
    if len(keys) == 0 or peer_size == 0:  # both ends know both sizes and stop here
        return empty, peer_size
    idle = while_waiting if while_waiting is not None else (lambda: None)
    if role == "requester":
        matched = _run_requester(channel, keys, peer_size, reveal_to_provider, timeout, idle)
        return matched, peer_size
    return _run_provider(channel, keys, peer_size, reveal_to_provider, timeout, idle), peer_size


def tag_bytes(requester_size: int, provider_size: int) -> int:
    """Tag length ``L`` so that ``n_R n_P 2^(-8 L) <= 2^-40``."""
    bits = STAT_SECURITY + math.log2(max(requester_size, 1)) + math.log2(max(provider_size, 1))
    return min(ot.BLOCK, math.ceil(bits / 8))


def with_hash_index(digest: U8, which: npt.NDArray[np.integer] | int) -> U8:
    """OPRF inputs of BLAKE2b digests (used by :mod:`.multiparty`): the cuckoo hash function's
    index folded into byte 0."""
    inputs = np.array(digest, dtype=np.uint8, copy=True)
    inputs[:, 0] ^= np.asarray(which).astype(np.uint8)
    return inputs


def chunks(bins: int) -> list[tuple[int, int]]:
    """The ``(lo, hi)`` bin ranges of the ``u`` messages."""
    size = chunk_bins(bins)
    return [(lo, min(lo + size, bins)) for lo in range(0, bins, size)]


def chunk_bins(bins: int) -> int:
    """Bins per ``u`` chunk for a table of ``bins`` bins (a multiple of 128; module docstring)."""
    return min(CHUNK_BINS, max(MIN_CHUNK_BINS, -(-bins // 8 // 2048) * 2048))


# --- OPRF setup (IKNP to 512 OTs, code key) ---------------------------------------------------


@dataclass(frozen=True)
class ReceiverSetup:
    """The requester's (OPRF receiver's) half of an OPRF setup."""

    seeds0: U8
    seeds1: U8
    code_key: bytes

    def receiver(self) -> ot.KkrtReceiver:
        return ot.KkrtReceiver(self.seeds0, self.seeds1, self.code_key)


@dataclass(frozen=True)
class SenderSetup:
    """The provider's (OPRF sender's) half of an OPRF setup."""

    choices: npt.NDArray[np.bool_]
    seeds: U8
    code_key: bytes

    def sender(self, bins: int) -> ot.KkrtSender:
        return ot.KkrtSender(self.choices, self.seeds, self.code_key, bins)


def setup_requester(
    channel: Channel, timeout: float | None, while_waiting: Callable[[], object] | None = None
) -> ReceiverSetup:
    """IKNP (requester as extension sender) and the provider's code key; ``while_waiting`` runs
    while the provider derives its base-OT keys."""
    seeds0, seeds1 = ot.iknp_send(channel, ot.CODE_BITS, timeout, while_waiting)
    code_key = recv_exact(channel, ot.BLOCK, timeout, "code key")
    return ReceiverSetup(seeds0, seeds1, code_key)


def setup_provider(
    channel: Channel, timeout: float | None, while_waiting: Callable[[], object] | None = None
) -> SenderSetup:
    """IKNP (provider as extension receiver with random choices) and a fresh code key;
    ``while_waiting`` runs while the requester computes its base-OT points."""
    choices = ot.random_bits(ot.CODE_BITS)
    seeds = ot.iknp_receive(channel, choices, timeout, while_waiting)
    code_key = secrets.token_bytes(ot.BLOCK)
    channel.send(code_key)
    return SenderSetup(choices, seeds, code_key)


# --- local steps ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnTags:
    """The requester's tags, one per own item: ``tags[k]`` is ``F`` of item ``k``'s bin, from
    hash function ``which[k]``."""

    tags: U8
    which: I64


EMPTY_BIN_INPUT = np.zeros(ot.BLOCK, dtype=np.uint8)
EMPTY_BIN_INPUT[cuckoo.SHORT_ITEM] = cuckoo.DUMMY_FLAG | 3 << cuckoo.INDEX_SHIFT


def requester_inputs(keys: U8, placed: cuckoo.CuckooTable, lo: int, hi: int) -> tuple[U8, I64]:
    """OPRF inputs of bins ``lo .. hi`` and the positions (in that range) of the occupied ones.

    Empty bins get :data:`EMPTY_BIN_INPUT`, which no indexed item key equals (dummy flag, hash
    index 3); their outputs are never used, and their ``u`` columns, like all others, are masked
    by PRG columns the provider cannot know."""
    table = placed.table[lo:hi]
    used = np.flatnonzero(table != cuckoo.EMPTY)
    inputs = np.empty((hi - lo, ot.BLOCK), dtype=np.uint8)
    inputs[:] = EMPTY_BIN_INPUT
    items = table[used]
    ot.put_rows(inputs, used, cuckoo.indexed_keys(ot.take_rows(keys, items), placed.which[items]))
    return inputs, used


def requester_encode(
    setup: ReceiverSetup,
    keys: U8,
    placed: cuckoo.CuckooTable,
    width: int,
    send: Callable[[U8], None],
    offset: int = 0,
) -> OwnTags:
    """Encode the cuckoo table's bins as OPRF receiver, passing each ``u`` chunk to ``send``
    (bins ``offset .. offset + m`` of the OPRF instance, ``offset`` a multiple of 128).
    Works chunk by chunk: only the items' tags are kept."""
    receiver = setup.receiver()
    tags = np.empty((len(keys), width), dtype=np.uint8)
    for lo, hi in chunks(placed.bins):
        inputs, used = requester_inputs(keys, placed, lo, hi)
        u, t0_rows = receiver.encode(inputs, offset=offset + lo)
        del inputs
        send(u)
        del u
        # F(j, r_j) = H(j, row_j(T0)) (KkrtReceiver.outputs), for the occupied bins only
        bins = (used + offset + lo).astype(np.uint64)
        hashed = ot.mmo_hash(ot.take_rows(t0_rows, used), bins, ot.KKRT_DOMAIN)
        ot.put_rows(tags, placed.table[lo:hi][used], hashed[:, :width])
    return OwnTags(tags, placed.which.astype(np.int64))


@dataclass(frozen=True)
class ProviderPlan:
    """Where the provider's items go: ``loc[i, k] = h_i(y_k)``; ``by_chunk[i]`` lists the items
    in the order of the ``u`` chunk holding their bin ``h_i``, chunk ``c`` being
    ``by_chunk[i][bounds[i][c] : bounds[i][c + 1]]``."""

    bins: int
    loc: npt.NDArray[np.integer]
    by_chunk: list[npt.NDArray[np.integer]]
    bounds: list[I64]


def provider_plan(keys: U8, seed: bytes, bins: int) -> ProviderPlan:
    """The provider's simple hashing of its keys under ``seed`` into ``bins`` bins."""
    small = max(bins, len(keys)) < 1 << 31  # 32-bit positions halve the plan's memory
    index = np.int32 if small else np.int64
    loc: npt.NDArray[np.integer] = cuckoo.locations(keys, seed, bins).astype(index)
    count = len(chunks(bins))
    kind = np.uint16 if count < 1 << 16 else np.int64
    by_chunk: list[npt.NDArray[np.integer]] = []
    bounds: list[I64] = []
    for i in range(cuckoo.HASHES):  # items of each list grouped by the chunk of their bin
        chunk_of = (loc[i] // chunk_bins(bins)).astype(kind)
        by_chunk.append(np.argsort(chunk_of, kind="stable").astype(index))
        bounds.append(np.searchsorted(chunk_of[by_chunk[i]], np.arange(count + 1)))
    return ProviderPlan(bins, loc, by_chunk, bounds)


def provider_tags(
    setup: SenderSetup,
    keys: U8,
    seed: bytes,
    bins: int,
    width: int,
    receive: Callable[[int, int], U8],
    offset: int = 0,
    plan: ProviderPlan | None = None,
) -> U8:
    """The provider's tags ``(3, n, width)`` of its keys (in the given order): list ``i`` holds
    ``F(h_i(y), k(y) | i << 4)``. ``receive(lo, hi)`` returns the ``u`` chunk of bins
    ``lo .. hi``; each chunk's rows are used for the items hashed into it, then dropped.
    ``plan`` is :func:`provider_plan` of the same keys, seed and bins, if already computed."""
    n = len(keys)
    sender = setup.sender(offset + bins)
    if plan is None:
        plan = provider_plan(keys, seed, bins)
    loc, by_chunk, bounds = plan.loc, plan.by_chunk, plan.bounds
    ranges = chunks(bins)
    tags = np.empty((cuckoo.HASHES, n, width), dtype=np.uint8)
    for c, (lo, hi) in enumerate(ranges):
        rows = sender.rows(receive(lo, hi), offset + lo)
        for i in range(cuckoo.HASHES):
            for start in range(bounds[i][c], bounds[i][c + 1], _EVAL_BATCH):
                sel = by_chunk[i][start : min(start + _EVAL_BATCH, bounds[i][c + 1])]
                at = loc[i][sel]
                inputs = cuckoo.indexed_keys(ot.take_rows(keys, sel), i)
                out = sender.evaluate_rows(
                    ot.take_rows(rows, at - lo), (at + offset).astype(np.uint64), inputs
                )
                ot.put_rows(tags[i], sel, out[:, :width])
    return tags


_EVAL_BATCH = 1 << 17


def _prefixes(tags: U8) -> U64:
    """The first 8 bytes of each tag as a big-endian number (zero padded)."""
    width = tags.shape[1]
    if width >= 8:
        return np.ascontiguousarray(tags[:, :8]).view(">u8").reshape(-1).astype(np.uint64)
    padded = np.zeros((len(tags), 8), dtype=np.uint8)
    padded[:, :width] = tags
    return padded.view(">u8").reshape(-1).astype(np.uint64)


def _equal_rows(a: U8, b: U8) -> npt.NDArray[np.bool_]:
    """Row-wise equality of two ``(k, width)`` tag arrays (``width`` <= 16), compared as two
    64-bit words per row (far faster than ``np.all`` over the bytes)."""
    width = a.shape[1]
    padded = np.zeros((2, len(a), 16), dtype=np.uint8)
    padded[0, :, :width] = a
    padded[1, :, :width] = b
    words = padded.view(np.uint64)
    equal: npt.NDArray[np.bool_] = np.all(words[0] == words[1], axis=1)
    return equal


def _sorted_with_index(prefix: U64, bits: np.uint64) -> tuple[U64, I64]:
    """Sort by prefix with the position in the low ``bits`` bits: (short prefixes, positions).
    Consumes ``prefix`` (sorted in place, few temporaries: this runs on n-sized arrays)."""
    prefix >>= bits
    prefix <<= bits
    prefix |= np.arange(len(prefix), dtype=np.uint64)
    prefix.sort()
    index = (prefix & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    prefix >>= bits
    return prefix, index


@dataclass(frozen=True)
class _SortedOwn:
    bits: np.uint64
    lists: list[tuple[U64, I64]]  # per list: sorted shortened prefixes, own item indices


def _sort_own(own: OwnTags, peer_size: int, lists: int = cuckoo.HASHES) -> _SortedOwn:
    bits = np.uint64(max(peer_size - 1, len(own.tags) - 1, 1).bit_length())
    out = []
    for i in range(lists):
        mine = np.flatnonzero(own.which == i)
        prefix, index = _sorted_with_index(_prefixes(ot.take_rows(own.tags, mine)), bits)
        out.append((prefix, mine[index]))
    return _SortedOwn(bits, out)


def match_tags(
    own: OwnTags, peer_lists: U8, prepared: _SortedOwn | None = None
) -> tuple[npt.NDArray[np.bool_], I64]:
    """For each own tag: is it in ``peer_lists[which]``, and at which position there.

    Per list: sort the peer's and our 64-bit tag prefixes with the positions stored in their
    low bits (plain ``np.sort``), ``searchsorted`` ours (sorted) into theirs, and compare whole
    tags (:func:`_equal_rows`); runs of equal shortened prefixes are walked until the tags
    differ. ``prepared`` (from ``_sort_own``) lets the requester sort its side while it waits
    for the peer.
    """
    lists, size, _ = peer_lists.shape
    found = np.zeros(len(own.tags), dtype=np.bool_)
    position = np.zeros(len(own.tags), dtype=np.int64)
    if size == 0:
        return found, position
    if prepared is None:
        prepared = _sort_own(own, size, lists)
    bits = prepared.bits
    for i in range(lists):
        own_prefix, own_index = prepared.lists[i]
        if own_prefix.size == 0:
            continue
        peer = np.ascontiguousarray(peer_lists[i])
        peer_prefix, peer_index = _sorted_with_index(_prefixes(peer), bits)
        at = np.searchsorted(peer_prefix, own_prefix, side="left")
        pending = np.arange(len(own_prefix))
        while pending.size:
            where = at[pending]
            inside = where < size
            pending, where = pending[inside], where[inside]
            same = peer_prefix[where] == own_prefix[pending]
            pending, where = pending[same], where[same]
            if pending.size == 0:
                break
            theirs, ours = peer_index[where], own_index[pending]
            hit = _equal_rows(ot.take_rows(peer, theirs), ot.take_rows(own.tags, ours))
            found[ours[hit]] = True
            position[ours[hit]] = theirs[hit]
            pending = pending[~hit]
            at[pending] = where[~hit] + 1
    return found, position


# --- the two roles --------------------------------------------------------------------------


def _run_requester(
    channel: Channel,
    keys: U8,
    peer_size: int,
    reveal: bool,
    timeout: float | None,
    idle: Callable[[], object],
) -> I64:
    seed = secrets.token_bytes(cuckoo.SEED_BYTES)
    channel.send(seed)  # first: the provider hashes its items while the base OTs run
    tables: list[cuckoo.CuckooTable] = []
    setup = setup_requester(  # the table is built while the provider derives its OT keys
        channel,
        timeout,
        lambda: tables.append(cuckoo.build_with_seed(keys, cuckoo.table_size(len(keys)), seed)),
    )
    placed = tables[0]
    width = tag_bytes(len(keys), peer_size)
    own = requester_encode(setup, keys, placed, width, lambda u: send_records(channel, u))
    del placed
    prepared = _sort_own(own, peer_size)
    idle()
    peer_tags = recv_records(channel, width, timeout, count=cuckoo.HASHES * peer_size)
    found, position = match_tags(own, peer_tags.reshape(cuckoo.HASHES, peer_size, width), prepared)
    if reveal:
        # list positions only, each once: which hash function placed a match depends on the
        # requester's other items, so it must not travel (issue 15, item 5)
        matched = np.unique(position[found]).astype(">u8")
        send_records(channel, matched.view(np.uint8).reshape(-1, 8))
    return np.flatnonzero(found).astype(np.int64)


def _run_provider(
    channel: Channel,
    keys: U8,
    peer_size: int,
    reveal: bool,
    timeout: float | None,
    idle: Callable[[], object],
) -> I64 | None:
    n = len(keys)
    seed = recv_exact(channel, cuckoo.SEED_BYTES, timeout, "cuckoo seed")
    bins = cuckoo.table_size(peer_size)
    width = tag_bytes(peer_size, n)

    def receive(lo: int, hi: int) -> U8:
        return recv_records(channel, (hi - lo) // 8, timeout, count=ot.CODE_BITS)

    # The keys are shuffled (list position ``p`` holds key ``order[p]``) and hashed into their
    # bins in a second thread while this one runs the OPRF setup and waits for the first chunk
    # of ``u``: a provider's node holds what it sends until it next receives
    # (:mod:`privledger.node.release`), so planning between a send and the next receive would
    # keep the base-OT point, or ``u'`` and the code key, from the requester until it is done.
    with ThreadPoolExecutor(1, thread_name_prefix="kkrt-plan") as aside:
        planning = aside.submit(_shuffle_and_plan, keys, seed, bins)
        setup = setup_provider(channel, timeout)
        early = [receive(*chunks(bins)[0])]
        order, shuffled, plan = planning.result()

    def receive_next(lo: int, hi: int) -> U8:
        return early.pop() if early else receive(lo, hi)

    tags = provider_tags(setup, shuffled, seed, bins, width, receive_next, plan=plan)
    del shuffled, plan
    channel.delivering()  # the tags give the requester its output
    send_records(channel, tags.reshape(cuckoo.HASHES * n, width))
    if not reveal:
        return None
    del tags
    idle()
    return np.sort(order[matched_positions(channel, n, timeout)])


def _shuffle_and_plan(keys: U8, seed: bytes, bins: int) -> tuple[I64, U8, ProviderPlan]:
    order = random_permutation(len(keys))
    shuffled = ot.take_rows(keys, order)
    return order, shuffled, provider_plan(shuffled, seed, bins)


def matched_positions(channel: Channel, n: int, timeout: float | None) -> I64:
    """Receive the requester's matched list positions (distinct, sorted, each below ``n``)."""
    matched = recv_records(channel, 8, timeout).view(">u8").reshape(-1).astype(np.int64)
    if matched.size and (matched.min() < 0 or matched.max() >= n):
        raise ChannelError("peer sent a matched position out of range")
    if np.any(np.diff(matched) <= 0):
        raise ChannelError("peer sent matched positions that are not distinct and sorted")
    return matched
