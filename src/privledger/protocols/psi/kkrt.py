"""Two-party KKRT PSI (batched OPRF from OT extension), semi-honest.

Construction: Kolesnikov, Kumaresan, Rosulek and Trieu, "Efficient Batched Oblivious PRF with
Applications to Private Set Intersection" (CCS 2016, ePrint 2016/799), structured like libOTe's
``KkrtNcoOtReceiver/Sender`` + ``KkrtPsiReceiver/Sender``; our own code. The requester ``R`` is
the OPRF receiver and learns the intersection; the provider ``P`` is the OPRF sender.

1. Items are de-duplicated and hashed to 128 bits, ``d(x) = BLAKE2b-128(x)`` personalised with
   :data:`_DIGEST_DOMAIN`.
2. ``R`` cuckoo-hashes its ``n_R`` digests into ``m = table_size(n_R)`` bins (3 hash functions,
   stash-less, ``m ~ 1.27 n_R``; parameters, sources and failure handling in
   :mod:`.cuckoo`) -- re-seeding locally until a table exists -- and sends the hash seed. Bin
   ``j`` holding ``x`` placed by hash function ``i`` gets OPRF input ``r_j = d(x) xor i``
   (the index in the first byte); empty bins get random inputs.
3. 128 Chou-Orlandi base OTs, IKNP-extended to 512 random OTs in which ``P`` is the *receiver*
   with random choice bits ``s`` (roles as in KKRT; details in :mod:`.ot`). ``P`` draws a fresh
   AES key for the pseudorandom code of width 512 and sends it.
4. ``R`` sends the KKRT matrix ``u`` (512 x ``m`` bits) in chunks of :data:`CHUNK_BINS` bins; it
   obtains ``F(j, r_j)`` for every bin and ``P`` obtains the key to evaluate ``F(j, .)``.
5. ``P`` (simple hashing) computes, for each of its items ``y`` and each ``i`` in 0..2,
   ``F(h_i(y), d(y) xor i)`` truncated to ``L`` bytes, and sends three lists (one per ``i``),
   each in one secret random order of its items (the same order for the three lists).
6. ``R`` outputs the ``x`` whose tag ``F(j, r_j)`` appears in list ``i`` (``i`` = the function
   that placed ``x``); matching is sort + ``searchsorted`` on the tags.
7. With ``reveal_to_provider``, ``R`` sends the sorted positions of the matched tags and ``P``
   outputs the corresponding items.

``F(j, r) = H(j, row_j(T0))`` with ``H`` a fixed-key-AES correlation-robust hash tweaked by the
bin index (see :mod:`.ot`). Tag length ``L = ceil((40 + log2 n_R + log2 n_P) / 8)`` bytes (at
most 16): each of ``R``'s tags is compared with the ``n_P`` tags of one list, so the chance of any
false match is at most ``n_R n_P 2^(-8 L) <= 2^-40``. That 2^-40 false-positive chance is
the only way the output can be wrong; a cuckoo failure re-seeds or raises
:class:`~.cuckoo.CuckooError`.

Message sequence after the header exchange (side a first, as in :mod:`.ecdh`)::

    R -> P   cuckoo seed (16 bytes)
    P -> R   base-OT point A                       \\
    R -> P   128 base-OT points B_i                 } IKNP, 512 random OTs
    P -> R   u' (128 x 512 bits)                   /
    P -> R   code key (16 bytes)
    R -> P   u in ceil(m / CHUNK_BINS) messages (512 x chunk bits each, 64 bytes per bin)
    P -> R   tags (3 n_P records of L bytes)
    R -> P   matched positions (only with reveal_to_provider)

The protocol is turn-based, so the channel's transcript hash is equal on both ends.
Communication: ``R`` sends ~64 m + 4 KiB bytes (~81 n_R), ``P`` sends ~3 L n_P + 8 KiB.

Security model: semi-honest (honest-but-curious) parties, kappa = 128 computational and
lambda = 40 statistical security; CDH in the random-oracle model for the base OTs, AES as a PRF
(PRG, code) and fixed-key AES as an ideal permutation (hash); not secure against a malicious
peer (e.g. one that deviates from the protocol or lies about its set or its results).

Leakage -- what each side learns:

- requester: the intersection and the provider's set size ``n_P`` (after de-duplication);
  which of its own items matched through which hash function (nothing about the provider).
- provider: the requester's set size ``n_R`` (after de-duplication; it fixes ``m``); with
  ``reveal_to_provider`` also the intersection (its own matching items); nothing else.
- both: that the peer runs this protocol version and mode (header in clear over the channel;
  the transport encrypts it on the wire). Timing reveals whether the requester needed to
  re-seed its cuckoo table (probability <= 2^-40 for n_R >= 2^10).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from privledger.protocols.channel import (
    Channel,
    ChannelError,
    recv_exact,
    recv_records,
    send_records,
)
from privledger.protocols.psi import cuckoo, ot
from privledger.protocols.psi.common import (
    Header,
    PsiResult,
    Role,
    check_role,
    distinct_items,
    handshake,
    random_permutation,
)

logger = logging.getLogger(__name__)


PROTOCOL = "privledger/kkrt-psi"
VERSION = 1
STAT_SECURITY = 40
CHUNK_BINS = 1 << 17  # bins per u message and per processing chunk (a multiple of 128)
_DIGEST_DOMAIN = b"pl/kkrt-psi/v1"
_EVAL_CHUNK = 1 << 17  # provider items per evaluation chunk

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

__all__ = ["PROTOCOL", "VERSION", "run_psi", "tag_bytes"]


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
    check_role(role)
    started = time.perf_counter()
    own = distinct_items(items)
    peer_size = handshake(
        channel, Header(PROTOCOL, VERSION, role, reveal_to_provider, len(own)), timeout
    )
    learns = role == "requester" or reveal_to_provider
    if not own or peer_size == 0:  # both ends know both sizes and stop here
        result = PsiResult([], learns, peer_size)
    elif role == "requester":
        result = _Requester(channel, own, peer_size, reveal_to_provider, timeout).run()
    else:
        result = _Provider(channel, own, peer_size, reveal_to_provider, timeout).run()
    logger.info(
        "kkrt-psi %s: %d items, peer %d, output %s (%d items), %.2f s",
        role,
        len(own),
        peer_size,
        result.learned_output,
        len(result.intersection),
        time.perf_counter() - started,
    )
    return result


def tag_bytes(requester_size: int, provider_size: int) -> int:
    """Tag length ``L`` so that ``n_R n_P 2^(-8 L) <= 2^-40``."""
    bits = STAT_SECURITY + math.log2(max(requester_size, 1)) + math.log2(max(provider_size, 1))
    return min(ot.BLOCK, math.ceil(bits / 8))


def with_hash_index(digest: U8, which: npt.NDArray[np.integer] | int) -> U8:
    """OPRF inputs: the item digest with the cuckoo hash function's index folded into byte 0."""
    inputs = np.array(digest, dtype=np.uint8, copy=True)
    inputs[:, 0] ^= np.asarray(which).astype(np.uint8)
    return inputs


def _chunks(bins: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + CHUNK_BINS, bins)) for lo in range(0, bins, CHUNK_BINS)]


class _Requester:
    def __init__(
        self, channel: Channel, own: list[bytes], peer_size: int, reveal: bool, t: float | None
    ) -> None:
        self.channel, self.own, self.peer_size = channel, own, peer_size
        self.reveal, self.timeout = reveal, t

    def run(self) -> PsiResult:
        channel, timeout = self.channel, self.timeout
        digest = cuckoo.digests(self.own, _DIGEST_DOMAIN)
        placed = cuckoo.build(digest, cuckoo.table_size(len(self.own)))
        channel.send(placed.seed)
        seeds0, seeds1 = ot.iknp_send(channel, ot.CODE_BITS, timeout)
        code_key = recv_exact(channel, ot.BLOCK, timeout, "code key")

        # OPRF inputs per bin: the placed item's digest xor its hash index, or random.
        occupied = placed.table != cuckoo.EMPTY
        inputs = ot.random_bytes(placed.bins, ot.BLOCK)
        items = placed.table[occupied]
        inputs[occupied] = with_hash_index(digest[items], placed.which[items])

        width = tag_bytes(len(self.own), self.peer_size)
        bin_tags = np.empty((placed.bins, width), dtype=np.uint8)
        receiver = ot.KkrtReceiver(seeds0, seeds1, code_key)
        for lo, hi in _chunks(placed.bins):
            u, t0_rows = receiver.encode(inputs[lo:hi], offset=lo)
            send_records(channel, u)
            bin_tags[lo:hi] = ot.KkrtReceiver.outputs(t0_rows, offset=lo)[:, :width]
        del inputs

        peer_tags = recv_records(channel, width, timeout, count=3 * self.peer_size)
        item_bins = np.empty(len(self.own), dtype=np.int64)
        item_bins[items] = np.flatnonzero(occupied)
        which = placed.which.astype(np.int64)
        # Compare each tag only with the list of its hash index: key = (index, tag).
        found, position = _match(
            bin_tags[item_bins], which, peer_tags.reshape(3, self.peer_size, width)
        )
        if self.reveal:
            matched = np.sort(which[found] * self.peer_size + position[found]).astype(">u8")
            send_records(channel, matched.view(np.uint8).reshape(-1, 8))
        own = self.own
        return PsiResult(
            sorted(own[k] for k in np.flatnonzero(found).tolist()), True, self.peer_size
        )


class _Provider:
    def __init__(
        self, channel: Channel, own: list[bytes], peer_size: int, reveal: bool, t: float | None
    ) -> None:
        self.channel, self.own, self.peer_size = channel, own, peer_size
        self.reveal, self.timeout = reveal, t

    def run(self) -> PsiResult:
        channel, timeout = self.channel, self.timeout
        n = len(self.own)
        order = random_permutation(n)  # list position p holds item order[p]
        digest = cuckoo.digests(self.own, _DIGEST_DOMAIN)[order]
        seed = recv_exact(channel, cuckoo.SEED_BYTES, timeout, "cuckoo seed")
        choices = ot.random_bits(ot.CODE_BITS)
        seeds = ot.iknp_receive(channel, choices, timeout)
        code_key = secrets.token_bytes(ot.BLOCK)
        channel.send(code_key)

        bins = cuckoo.table_size(self.peer_size)
        loc = cuckoo.locations(digest, seed, bins)
        sender = ot.KkrtSender(choices, seeds, code_key, bins)
        for lo, hi in _chunks(bins):
            u = recv_records(channel, (hi - lo) // 8, timeout, count=ot.CODE_BITS)
            sender.receive(u, offset=lo)

        width = tag_bytes(self.peer_size, n)
        tags = np.empty((3, n, width), dtype=np.uint8)
        for i in range(cuckoo.HASHES):
            index = np.full(n, i, dtype=np.uint8)
            for lo in range(0, n, _EVAL_CHUNK):
                hi = min(lo + _EVAL_CHUNK, n)
                inputs = with_hash_index(digest[lo:hi], index[lo:hi])
                tags[i, lo:hi] = sender.evaluate(loc[i, lo:hi].astype(np.uint64), inputs)[:, :width]
        del sender
        send_records(channel, tags.reshape(3 * n, width))
        if not self.reveal:
            return PsiResult([], False, self.peer_size)
        matched = recv_records(channel, 8, timeout).view(">u8").reshape(-1).astype(np.int64)
        if matched.size and (matched.min() < 0 or matched.max() >= 3 * n):
            raise ChannelError("peer sent a matched position out of range")
        positions = np.unique(matched % n)
        own = self.own
        return PsiResult(sorted(own[k] for k in order[positions].tolist()), True, self.peer_size)


def _keys(tags: U8) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Two big-endian 64-bit words per tag (zero padded to 16 bytes)."""
    padded = np.zeros((len(tags), 16), dtype=np.uint8)
    padded[:, : tags.shape[1]] = tags
    words = padded.view(">u8").astype(np.uint64)
    return words[:, 0].copy(), words[:, 1].copy()


def _match(own_tags: U8, own_list: I64, peer_lists: U8) -> tuple[npt.NDArray[np.bool_], I64]:
    """For each own tag: is it in ``peer_lists[own_list[k]]``, and at which position.

    Sort the peer's 64-bit tag prefixes, ``searchsorted`` the (sorted) own prefixes, and compare
    the rest of the tag; prefixes shared by several peer tags (~never) are resolved one by one.
    """
    lists, size, _ = peer_lists.shape
    found = np.zeros(len(own_tags), dtype=np.bool_)
    position = np.zeros(len(own_tags), dtype=np.int64)
    for i in range(lists):
        mine = np.flatnonzero(own_list == i)
        if mine.size == 0:
            continue
        peer_hi, peer_lo = _keys(peer_lists[i])
        order = np.argsort(peer_hi)
        sorted_hi = peer_hi[order]
        hi, lo = _keys(own_tags[mine])
        by_hi = np.argsort(hi)
        mine, hi, lo = mine[by_hi], hi[by_hi], lo[by_hi]
        left = np.searchsorted(sorted_hi, hi, side="left")
        at = np.minimum(left, size - 1)
        candidate = sorted_hi[at] == hi
        at, mine, lo = at[candidate], mine[candidate], lo[candidate]
        where = order[at]
        hit = peer_lo[where] == lo
        found[mine[hit]] = True
        position[mine[hit]] = where[hit]
        # A prefix shared by several peer tags: the first may not be the one; check them all.
        shared = np.flatnonzero(~hit & (at + 1 < size))
        for k in shared[sorted_hi[np.minimum(at[shared] + 1, size - 1)] == hi[candidate][shared]]:
            stop = np.searchsorted(sorted_hi, sorted_hi[at[k]], side="right")
            for where_k in order[at[k] : stop]:
                if peer_lo[where_k] == lo[k]:
                    found[mine[k]] = True
                    position[mine[k]] = where_k
    return found, position


# --- handshake -----------------------------------------------------------------------------
