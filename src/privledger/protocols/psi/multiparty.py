"""Multi-party set operations (F8), semi-honest: 3-party intersection and union, 2-party
difference, 2-party anonymous membership query.

Building blocks (all from this package): the KKRT batched OPRF (:mod:`.ot`: IKNP extension of
CO15 base OTs, 512-bit pseudorandom code), cuckoo hashing (:mod:`.cuckoo`) and, for the
intersection, an oblivious key-value store (:mod:`.okvs`) that makes the OPRF *programmable*.
Items are bytes of any length (empty and very long items included); each party removes its
duplicates first and every item is reduced to a 128-bit digest ``d(x) = BLAKE2b-128(x)``
personalised with ``pl/mpsi/v1`` (a digest collision, probability ~ n^2 2^-128, is the only way
two different items are confused). Notation: ``F_j(r)`` is the KKRT OPRF of input ``r`` in bin
``j`` (the OPRF *sender* can evaluate it for any ``(j, r)``, the *receiver* learns it only for
its own input of each bin); ``kappa(x, i) = d(x)`` with byte 0 xor ``i`` is the input of ``x``
when it sits in its ``i``-th cuckoo bin ``h_i(x)``.

Parties and channels. A three-party operation is called by each party with its own index and a
mapping *peer index -> Channel* for the two others (one two-party channel per pair;
:func:`local_channels` builds an in-memory mesh and :func:`run_local` runs the three parties in
threads). The *leader* (intersection) or *receiver* (union) is one of the three indices and the
only party with an output; the other two are *members*. Every channel starts with a JSON header
exchange (side ``a`` first) checking protocol, version, operation, indices, roles and leader;
then messages strictly alternate turns per channel, so each channel's transcript hash is equal
on both ends. On any failure a party closes all its channels (the others fail fast) and
re-raises. ``timeout`` bounds each wait for a message, in seconds.

**Three-party intersection** (output to the leader ``L``; members ``A < B``; OPRF receiver ``L``)::

    L: cuckoo table of its digests (one seed, m = table_size(n_L) bins) -> seed to A and B
    A -> B   a random 16-byte key K (the members' shared PRF key; L never sees it)
    L <-> A, L <-> B   two KKRT OPRF instances, L receiver on the same m bins:
             L gets F^A_j(r_j) and F^B_j(r_j) for its input r_j of every bin
    A -> L   OKVS D_A encoding kappa(y, i) -> F^A_{h_i(y)}(kappa(y, i)) xor G_K(y)[:W]
             for all y in X_A, i = 0, 1, 2 (G_K = AES-128 under K of d(y)); B likewise -> D_B
    L: for each own x in bin j: w_A = D_A(kappa) xor F^A_j,  w_B = D_B(kappa) xor F^B_j;
       x is in the intersection iff w_A == w_B

If ``x`` is in ``X_A`` (``X_B``) then ``w_A = G_K(x)`` (``w_B = G_K(x)``), otherwise ``w_A``
(``w_B``) is pseudorandom; ``W = ceil((40 + log2 n_L) / 8)`` bytes make a false match (the only
error, probability <= 2^-40 over the whole run) unlikely. This is the OPPRF + zero-sharing
approach of Kolesnikov, Matania, Pinkas, Rosulek, Trieu ("Practical Multi-party Private Set
Intersection from Symmetric-Key Techniques", CCS 2017) for three parties, with the PaXoS-style
OKVS of :mod:`.okvs` in place of their table-based hints.

**Three-party union** (output to the receiver ``R``; members ``S, T``; each member ``S`` runs
one instance with the *other* member as helper ``H``; the two instances run in parallel)::

    S: cuckoo table of its digests -> seed to R
    R <-> S  KKRT OPRF, S receiver: S gets a_y = F_j(kappa(y)) for each own y (bin j);
             R (OPRF sender) computes tags F_{h_i(x)}(kappa(x, i)) of all its x, i = 0, 1, 2;
             R acknowledges each of S's chunks of u but the last (an empty message, version 4:
             a provider's node holds what S sends until S next receives)
    S -> R   ciphertexts c_p = pad(y_p) xor SHAKE128(k_p), in a random order p, fresh 16-byte
             k_p; pad(y) = len(y) || y || zeros, all as long as S's longest item (16-byte steps)
    S -> H   (a_{y_p}[:W], k_p) in the same order p       (W = ceil((40 + log2 3 n_R n_S) / 8))
    R -> H   R's 3 n_R tags [:W], shuffled
    H -> R   (p, k_p) for every p whose tag is *not* among R's tags
    R: decrypts those c_p -- exactly the y in X_S \\ X_R; output X_R u (X_S \\ X_R) u (X_T \\ X_R)

A tag of an item of ``R`` matches ``a_y`` iff the item equals ``y`` (up to a 2^-40 false match,
which would drop an element from the union). This is the reverse-OPRF private set union of
Kolesnikov, Rosulek, Trieu, Wang ("Scalable Private Set Union from Symmetric-Key Techniques",
ASIACRYPT 2019) with the private equality test replaced by a non-colluding helper (the other
member), which makes it much simpler and fast but is the reason for the collusion caveat below.

**Two-party difference** ``A \\ B`` to ``A``: KKRT-PSI (:func:`.kkrt.run_psi`) with ``A`` as
requester; ``A`` outputs its items that did not match.

**Two-party anonymous membership query**: KKRT-PSI with the querier's single key as the
requester set: the querier sends OPRF traffic for one cuckoo table of 128 bins (its key in one
of them, the others random), the holder answers with the OPRF tags of all its items
(``3 n`` tags of ``ceil((40 + log2 n) / 8)`` bytes, in a random order); the querier checks its
key's tag against them.

Security model: semi-honest (honest-but-curious) parties, no collusion (see below); kappa = 128
computational security (CDH in the ROM for the base OTs, AES as a PRF, fixed-key AES as an
ideal permutation, BLAKE2b and SHAKE128 as random oracles) and lambda = 40 statistical security.
Not secure against malicious parties (a party that lies about its set, sends wrong OKVS or
tags, or a helper that forwards wrong keys changes the output undetected).

Leakage -- what each party learns beyond its own output (sizes are after de-duplication):

- intersection: the leader learns ``X_L n X_A n X_B`` and the sizes ``n_A``, ``n_B``; nothing
  about ``X_A n X_B`` or ``X_L n X_A`` beyond the output (not even their sizes). Each member
  learns ``n_L``; member A learns nothing of ``X_B`` and B nothing of ``X_A`` (not their sizes).
  Collusion: L with A learns ``X_L n X_B`` (A holds K); A with B learn only ``n_L``.
- union: the receiver learns ``X_R u X_S u X_T``, the sizes ``n_S``, ``n_T`` and, for every
  element outside ``X_R``, *which* members hold it (it learns ``X_S \\ X_R`` and
  ``X_T \\ X_R`` separately, hence also ``|X_R n X_S|`` and ``|X_R n X_T|``); of the member
  items' lengths only each member's longest, rounded up to 16 bytes (every ciphertext is padded
  to it; version 2 revealed every item's length); nothing about which of its own items the
  members hold. Each member learns all
  three sizes and, as helper of the other member's run, the *size* of the receiver's
  intersection with the other member (e.g. S learns ``|X_R n X_T|``), nothing about items.
  Collusion: R with a helper recovers the other member's whole set (the helper holds its OPRF
  tags and keys, R the OPRF key and ciphertexts) -- the helper must not collude with R.
- difference: ``A`` learns ``A \\ B``, hence also ``A n B`` (inherent), and ``n_B``; ``B``
  learns ``n_A``.
- membership: the querier learns whether its key is in the set and the holder's set size; the
  holder learns nothing (not the key, not the answer; that a query of one key took place).
- all: the protocol, operation and roles (headers in clear on the channel; the transport
  encrypts them). Timing reveals a cuckoo or OKVS re-seed (rare, and independent of the other
  parties' data); the OKVS seed is one for which peeling of the encoder's key set succeeds
  (almost every seed does).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from privledger.protocols.channel import (
    Channel,
    ChannelError,
    channel_pair,
    recv_exact,
    recv_records,
    send_records,
)
from privledger.protocols.psi import cuckoo, kkrt, okvs, ot
from privledger.protocols.psi.common import (
    PsiHandshakeError,
    Role,
    distinct_items,
    random_permutation,
)

logger = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Operation = Literal["intersection", "union"]

PROTOCOL = "privledger/multiparty-psi"
# 2: base OTs on secp256k1; 3: union ciphertexts padded to one width; 4: the union's receiver
# acknowledges each chunk of a member's OPRF messages but the last
VERSION = 4
STAT_SECURITY = 40
CHUNK_BINS = kkrt.CHUNK_BINS
_DIGEST_DOMAIN = b"pl/mpsi/v1"
_EVAL_CHUNK = 1 << 17
_COUNT = struct.Struct(">Q")
_T = TypeVar("_T")

__all__ = [
    "PROTOCOL",
    "VERSION",
    "DifferenceResult",
    "MembershipResult",
    "MultiPartyResult",
    "PsiHandshakeError",
    "answer_membership",
    "local_channels",
    "local_difference",
    "local_membership",
    "query_membership",
    "run_difference",
    "run_intersection",
    "run_local",
    "run_union",
]


@dataclass(frozen=True)
class MultiPartyResult:
    """Outcome of a three-party operation for one party.

    ``items`` is the output (sorted, de-duplicated original bytes) when ``learned_output`` (the
    leader / receiver), else empty. ``sizes`` maps party indices to the set sizes (after
    de-duplication) this party learned, its own included.
    """

    items: list[bytes] = field(repr=False)
    learned_output: bool
    sizes: dict[int, int]


@dataclass(frozen=True)
class DifferenceResult:
    """``difference`` is ``A \\ B`` for the requester ``A`` (sorted), empty for ``B``."""

    difference: list[bytes] = field(repr=False)
    learned_output: bool
    peer_size: int


@dataclass(frozen=True)
class MembershipResult:
    """The querier's answer: whether its key is in the holder's set, and the set's size."""

    member: bool
    holder_size: int


# --- public entry points -------------------------------------------------------------------


def run_intersection(
    index: int,
    peers: Mapping[int, Channel],
    items: Sequence[bytes],
    *,
    leader: int = 0,
    timeout: float | None = None,
) -> MultiPartyResult:
    """Three-party intersection; only ``leader`` learns ``X_0 n X_1 n X_2`` (see module doc)."""
    return _run("intersection", index, peers, items, leader, timeout)


def run_union(
    index: int,
    peers: Mapping[int, Channel],
    items: Sequence[bytes],
    *,
    receiver: int = 0,
    timeout: float | None = None,
) -> MultiPartyResult:
    """Three-party union; only ``receiver`` learns ``X_0 u X_1 u X_2`` (see module doc)."""
    return _run("union", index, peers, items, receiver, timeout)


def run_difference(
    channel: Channel, items: Sequence[bytes], *, role: Role, timeout: float | None = None
) -> DifferenceResult:
    """Two-party difference: the ``"requester"`` A learns ``A \\ B``, the ``"provider"`` B
    learns ``|A|``. Runs KKRT-PSI (:func:`.kkrt.run_psi`) with output to A."""
    own = distinct_items(items)
    result = kkrt.run_psi(channel, own, role=role, timeout=timeout)
    if role == "provider":
        return DifferenceResult([], False, result.peer_size)
    common = set(result.intersection)
    return DifferenceResult(sorted(x for x in own if x not in common), True, result.peer_size)


def query_membership(
    channel: Channel, key: bytes, *, timeout: float | None = None
) -> MembershipResult:
    """Anonymous membership query: is ``key`` in the holder's set? The holder learns nothing."""
    if not isinstance(key, bytes):
        raise TypeError("the query key must be bytes (encode text first)")
    result = kkrt.run_psi(channel, [key], role="requester", timeout=timeout)
    return MembershipResult(bool(result.intersection), result.peer_size)


def answer_membership(
    channel: Channel, items: Sequence[bytes], *, timeout: float | None = None
) -> None:
    """The holder's side of :func:`query_membership`; refuses a query of more than one key."""
    result = kkrt.run_psi(channel, distinct_items(items), role="provider", timeout=timeout)
    if result.peer_size != 1:  # only after the run: the querier's size is in its header
        raise PsiHandshakeError(f"a membership query has one key, the peer sent {result.peer_size}")


# --- in-memory runners ---------------------------------------------------------------------


def local_channels(indices: Sequence[int]) -> dict[int, dict[int, Channel]]:
    """A complete in-memory mesh: ``mesh[i][j]`` is party ``i``'s channel to ``j``.

    In each pair the lower index holds side ``"a"``.
    """
    mesh: dict[int, dict[int, Channel]] = {i: {} for i in indices}
    ordered = sorted(indices)
    for k, i in enumerate(ordered):
        for j in ordered[k + 1 :]:
            mesh[i][j], mesh[j][i] = channel_pair()
    return mesh


def run_local(
    operation: Operation,
    sets: Sequence[Sequence[bytes]],
    *,
    leader: int = 0,
    timeout: float | None = 120.0,
) -> list[MultiPartyResult]:
    """Run a three-party operation in threads over an in-memory mesh; party ``i`` has
    ``sets[i]``. Returns the three results in party order (re-raises the first failure)."""
    if len(sets) != 3:
        raise ValueError("a three-party operation needs exactly three sets")
    mesh = local_channels(range(3))
    run = run_intersection if operation == "intersection" else run_union
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = [
                pool.submit(_call_with_leader, run, i, mesh[i], sets[i], leader, timeout)
                for i in range(3)
            ]
            return [future.result() for future in futures]
    finally:
        for peers in mesh.values():
            for channel in peers.values():
                channel.close()


def local_difference(
    a: Sequence[bytes], b: Sequence[bytes], *, timeout: float | None = 120.0
) -> list[bytes]:
    """``A \\ B`` as learned by A, with both parties in threads of this process."""
    left, right = channel_pair()
    with left, right, ThreadPoolExecutor(2) as pool:
        provider = pool.submit(run_difference, right, b, role="provider", timeout=timeout)
        requester = run_difference(left, a, role="requester", timeout=timeout)
        provider.result()
    return requester.difference


def local_membership(
    key: bytes, items: Sequence[bytes], *, timeout: float | None = 120.0
) -> MembershipResult:
    """An anonymous membership query with both parties in threads of this process."""
    left, right = channel_pair()
    with left, right, ThreadPoolExecutor(1) as pool:
        holder = pool.submit(answer_membership, right, items, timeout=timeout)
        result = query_membership(left, key, timeout=timeout)
        holder.result()
    return result


def _call_with_leader(
    run: Callable[..., MultiPartyResult],
    index: int,
    peers: Mapping[int, Channel],
    items: Sequence[bytes],
    leader: int,
    timeout: float | None,
) -> MultiPartyResult:
    if run is run_intersection:
        return run_intersection(index, peers, items, leader=leader, timeout=timeout)
    return run_union(index, peers, items, receiver=leader, timeout=timeout)


# --- orchestration -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    operation: Operation
    index: int
    leader: int
    peers: dict[int, Channel]
    own: list[bytes]
    digest: U8
    timeout: float | None

    @property
    def members(self) -> list[int]:
        return sorted(i for i in (self.index, *self.peers) if i != self.leader)

    def other_member(self, member: int) -> int:
        return next(i for i in self.members if i != member)


def _run(
    operation: Operation,
    index: int,
    peers: Mapping[int, Channel],
    items: Sequence[bytes],
    leader: int,
    timeout: float | None,
) -> MultiPartyResult:
    if len(peers) != 2 or index in peers:
        raise ValueError(f"party {index} needs channels to exactly two other parties")
    if leader != index and leader not in peers:
        raise ValueError(f"the leader {leader} is not one of the parties")
    started = time.perf_counter()
    own = distinct_items(items)
    ctx = _Context(
        operation, index, leader, dict(peers), own, cuckoo.digests(own, _DIGEST_DOMAIN), timeout
    )
    try:
        sizes = _handshakes(ctx)
        if operation == "intersection":
            result = (
                _intersection_leader(ctx, sizes)
                if index == leader
                else _intersection_member(ctx, sizes)
            )
        elif index == leader:
            result = _union_receiver(ctx, sizes)
        else:
            result = _union_member(ctx, sizes)
    except BaseException as exc:
        logger.warning("multiparty %s aborted at party %d: %s", operation, index, exc)
        for channel in ctx.peers.values():
            channel.close()
        raise
    logger.info(
        "multiparty %s party %d (%s): %d items, output %s (%d items), %.2f s",
        operation,
        index,
        "leader" if index == leader else "member",
        len(own),
        result.learned_output,
        len(result.items),
        time.perf_counter() - started,
    )
    return result


def _handshakes(ctx: _Context) -> dict[int, int]:
    """Exchange headers on both channels; return the set sizes this party learns (own too).

    Sizes travel on leader channels (both operations) and, for the union only, between the
    members (each is the other's helper and learns the size from the traffic anyway).
    """
    sizes = {ctx.index: len(ctx.own)}
    for peer in sorted(ctx.peers):
        with_leader = ctx.leader in (ctx.index, peer)
        share_size = with_leader or ctx.operation == "union"
        theirs = _handshake(ctx, peer, len(ctx.own) if share_size else None)
        if share_size:
            if theirs is None:
                raise PsiHandshakeError(f"party {peer} did not send its set size")
            sizes[peer] = theirs
    return sizes


def _handshake(ctx: _Context, peer: int, size: int | None) -> int | None:
    channel = ctx.peers[peer]
    ours = {
        "protocol": PROTOCOL,
        "version": VERSION,
        "operation": ctx.operation,
        "index": ctx.index,
        "peer": peer,
        "leader": ctx.leader,
        "size": size,
    }
    payload = json.dumps(ours, sort_keys=True).encode()
    if channel.side == "a":
        channel.send(payload)
        theirs = _decode_header(channel.recv(ctx.timeout))
    else:
        theirs = _decode_header(channel.recv(ctx.timeout))
        channel.send(payload)
    for name in ("protocol", "version", "operation", "leader"):
        if theirs.get(name) != ours[name]:
            raise PsiHandshakeError(
                f"party {peer} runs {name}={theirs.get(name)!r}, we run {ours[name]!r}"
            )
    if theirs.get("index") != peer or theirs.get("peer") != ctx.index:
        raise PsiHandshakeError(
            f"channel to party {peer} reaches party {theirs.get('index')!r}, "
            f"which expects party {theirs.get('peer')!r}"
        )
    their_size = theirs.get("size")
    if their_size is not None and (type(their_size) is not int or not 0 <= their_size < 1 << 40):
        raise PsiHandshakeError(f"party {peer} sent a bad set size {their_size!r}")
    if (their_size is None) != (size is None):
        raise PsiHandshakeError(f"party {peer} disagrees on whether set sizes are exchanged")
    return their_size


def _decode_header(payload: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(payload)
    except ValueError:
        raise PsiHandshakeError("peer header is not JSON") from None
    if not isinstance(fields, dict):
        raise PsiHandshakeError("peer header is not a JSON object")
    return fields


def _parallel(work: Mapping[int, Callable[[], _T]]) -> dict[int, _T]:
    """Run one callable per peer in threads (the peers' channels are independent)."""
    with ThreadPoolExecutor(len(work)) as pool:
        futures = {peer: pool.submit(fn) for peer, fn in work.items()}
        return {peer: future.result() for peer, future in futures.items()}


# --- three-party intersection --------------------------------------------------------------


def _intersection_leader(ctx: _Context, sizes: dict[int, int]) -> MultiPartyResult:
    placement = _Placement.build(ctx.digest)
    width = _value_bytes(len(ctx.own))

    def session(peer: int) -> tuple[U8, okvs.Okvs]:
        channel = ctx.peers[peer]
        channel.send(placement.seed)
        outputs = _oprf_receive(channel, placement.inputs, ctx.timeout)
        seed = recv_exact(channel, okvs.SEED_BYTES, ctx.timeout, "OKVS seed")
        table = recv_records(channel, width, ctx.timeout, count=okvs.table_cells(3 * sizes[peer]))
        return outputs, okvs.Okvs(seed, table)

    done = _parallel({peer: partial(session, peer) for peer in ctx.peers})
    kappa = placement.inputs[placement.item_bins]
    combined = np.zeros((len(ctx.own), width), dtype=np.uint8)
    for outputs, store in done.values():
        combined ^= okvs.decode(store, kappa)
        combined ^= outputs[placement.item_bins, :width]
    hit = ~combined.any(axis=1)
    own = ctx.own
    return MultiPartyResult(sorted(own[k] for k in np.flatnonzero(hit).tolist()), True, sizes)


def _intersection_member(ctx: _Context, sizes: dict[int, int]) -> MultiPartyResult:
    other = ctx.other_member(ctx.index)
    if ctx.index < other:
        prf_key = secrets.token_bytes(ot.BLOCK)
        ctx.peers[other].send(prf_key)
    else:
        prf_key = recv_exact(ctx.peers[other], ot.BLOCK, ctx.timeout, "PRF key")
    channel = ctx.peers[ctx.leader]
    n_leader = sizes[ctx.leader]
    width = _value_bytes(n_leader)
    seed = recv_exact(channel, cuckoo.SEED_BYTES, ctx.timeout, "cuckoo seed")
    bins = cuckoo.table_size(n_leader)
    sender = _oprf_send(channel, bins, ctx.timeout)
    digest = ctx.digest
    n = len(digest)
    tags = _oprf_tags(sender, digest, cuckoo.locations(digest, seed, bins), width)
    del sender
    shared = ot.aes_ecb(prf_key, np.ascontiguousarray(digest))[:, :width]
    keys = np.concatenate([kkrt.with_hash_index(digest, i) for i in range(cuckoo.HASHES)])
    values = (tags ^ shared[None, :, :]).reshape(cuckoo.HASHES * n, width)
    store = okvs.encode(keys, values)
    # the OKVS gives the leader its output; a task that aligns rows with it receives afterwards
    channel.delivering()
    channel.send(store.seed)
    send_records(channel, store.table)
    return MultiPartyResult([], False, sizes)


# --- three-party union ---------------------------------------------------------------------


def _union_receiver(ctx: _Context, sizes: dict[int, int]) -> MultiPartyResult:
    n_own = len(ctx.own)

    def session(member: int) -> tuple[U8, _Ciphertexts]:
        channel = ctx.peers[member]
        seed = recv_exact(channel, cuckoo.SEED_BYTES, ctx.timeout, "cuckoo seed")
        bins = cuckoo.table_size(sizes[member])
        sender = _oprf_send(channel, bins, ctx.timeout, acknowledge=True)
        width = _union_tag_bytes(n_own, sizes[member])
        tags = _oprf_tags(sender, ctx.digest, cuckoo.locations(ctx.digest, seed, bins), width)
        del sender
        flat = tags.reshape(cuckoo.HASHES * n_own, width)[random_permutation(3 * n_own)]
        return flat, _Ciphertexts.recv(channel, sizes[member], ctx.timeout)

    done = _parallel({member: partial(session, member) for member in ctx.members})
    # Each member is the helper of the other one's run: send it the tags of that run.
    for helper in ctx.members:
        send_records(ctx.peers[helper], done[ctx.other_member(helper)][0])
    union = set(ctx.own)
    for helper in ctx.members:
        owner = ctx.other_member(helper)
        released = recv_records(ctx.peers[helper], _RELEASE_BYTES, ctx.timeout)
        union.update(done[owner][1].decrypt(released))
    return MultiPartyResult(sorted(union), True, sizes)


def _union_member(ctx: _Context, sizes: dict[int, int]) -> MultiPartyResult:
    channel = ctx.peers[ctx.leader]
    other = ctx.other_member(ctx.index)
    n = len(ctx.own)
    placement = _Placement.build(ctx.digest)
    channel.send(placement.seed)
    outputs = _oprf_receive(channel, placement.inputs, ctx.timeout, acknowledged=True)
    width = _union_tag_bytes(sizes[ctx.leader], n)
    order = random_permutation(n)  # position p carries item order[p]
    pad_keys = ot.random_bytes(n, ot.BLOCK)
    cipher = _Ciphertexts.encrypt([ctx.own[k] for k in order.tolist()], pad_keys)
    cipher.send(channel)
    mine = np.concatenate([outputs[placement.item_bins[order], :width], pad_keys], axis=1)

    # Exchange the (tag, pad key) lists with the other member, the lower index first.
    other_width = _union_tag_bytes(sizes[ctx.leader], sizes[other])
    link = ctx.peers[other]
    if ctx.index < other:
        send_records(link, mine)
        theirs = recv_records(link, other_width + ot.BLOCK, ctx.timeout, count=sizes[other])
    else:
        theirs = recv_records(link, other_width + ot.BLOCK, ctx.timeout, count=sizes[other])
        send_records(link, mine)

    # Helper for the other member's run: release the pad keys of the items the receiver lacks.
    receiver_tags = recv_records(
        channel, other_width, ctx.timeout, count=cuckoo.HASHES * sizes[ctx.leader]
    )
    fresh = np.flatnonzero(~_member(theirs[:, :other_width], receiver_tags))
    released = np.empty((fresh.size, _RELEASE_BYTES), dtype=np.uint8)
    released[:, :8] = fresh.astype(">u8").view(np.uint8).reshape(-1, 8)
    released[:, 8:] = theirs[fresh, other_width:]
    channel.delivering()  # the released pad keys give the receiver the other member's items
    send_records(channel, released)
    return MultiPartyResult([], False, sizes)


_RELEASE_BYTES = 8 + ot.BLOCK  # position (8-byte big-endian) and pad key


@dataclass(frozen=True)
class _Ciphertexts:
    """Items padded to one width and xored with SHAKE128(pad key): one message of a count, the
    record width and the records. A record is ``len(item)`` (4 bytes) || item || zeros, and every
    record is as long as the longest, rounded up to :data:`_PAD_QUANTUM` bytes: the receiver
    learns that width, never the length of an item (version 2 sent every item's length)."""

    width: int
    body: bytes

    @classmethod
    def encrypt(cls, items: list[bytes], pad_keys: U8) -> _Ciphertexts:
        longest = max(map(len, items), default=0)
        if longest >= 1 << 32:
            raise ValueError("items must be shorter than 4 GiB")
        width = _LENGTH_BYTES + -(-max(longest, 1) // _PAD_QUANTUM) * _PAD_QUANTUM
        shake = hashlib.shake_128
        plain = b"".join(
            len(item).to_bytes(_LENGTH_BYTES, "big") + item.ljust(width - _LENGTH_BYTES, b"\0")
            for item in items
        )
        pads = b"".join([shake(key).digest(width) for key in _rows(pad_keys)])
        body = np.frombuffer(plain, dtype=np.uint8) ^ np.frombuffer(pads, dtype=np.uint8)
        return cls(width, body.tobytes())

    def send(self, channel: Channel) -> None:
        count = len(self.body) // self.width
        channel.send(_COUNT.pack(count) + self.width.to_bytes(4, "big") + self.body)

    @classmethod
    def recv(cls, channel: Channel, count: int, timeout: float | None) -> _Ciphertexts:
        payload = channel.recv(timeout)
        head = _COUNT.size + 4
        if len(payload) < head or _COUNT.unpack_from(payload)[0] != count:
            raise ChannelError(f"expected {count} ciphertexts")
        width = int.from_bytes(payload[_COUNT.size : head], "big")
        body = payload[head:]
        if width <= _LENGTH_BYTES or len(body) != count * width:
            raise ChannelError("ciphertext records do not add up to the message")
        return cls(width, body)

    def decrypt(self, released: U8) -> list[bytes]:
        """The items at the released positions, decrypted with their pad keys."""
        positions = released[:, :8].copy().view(">u8").reshape(-1).astype(np.int64)
        count = len(self.body) // self.width
        if positions.size and (positions.min() < 0 or positions.max() >= count):
            raise ChannelError("helper released a position out of range")
        if np.unique(positions).size != positions.size:
            raise ChannelError("helper released a position twice")
        shake = hashlib.shake_128
        out = []
        for p, key in zip(positions.tolist(), _rows(released[:, 8:]), strict=True):
            record = self.body[p * self.width : (p + 1) * self.width]
            pad = shake(key).digest(self.width)
            plain = (int.from_bytes(record, "big") ^ int.from_bytes(pad, "big")).to_bytes(
                self.width, "big"
            )
            size = int.from_bytes(plain[:_LENGTH_BYTES], "big")
            if size > self.width - _LENGTH_BYTES:
                raise ChannelError("a decrypted item is longer than its record")
            out.append(plain[_LENGTH_BYTES : _LENGTH_BYTES + size])
        return out


_LENGTH_BYTES = 4
_PAD_QUANTUM = 16


# --- OPRF sessions (KKRT, from .ot) --------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    """A cuckoo table of own digests: per-bin OPRF inputs and each item's bin."""

    seed: bytes
    inputs: U8  # (bins, 16): kappa of the placed item, random in empty bins
    item_bins: I64  # (n,): bin of item k

    @classmethod
    def build(cls, digest: U8) -> _Placement:
        placed = cuckoo.build(digest, cuckoo.table_size(len(digest)))
        occupied = placed.table != cuckoo.EMPTY
        inputs = ot.random_bytes(placed.bins, ot.BLOCK)
        items = placed.table[occupied]
        inputs[occupied] = kkrt.with_hash_index(digest[items], placed.which[items])
        item_bins = np.empty(len(digest), dtype=np.int64)
        item_bins[items] = np.flatnonzero(occupied)
        return cls(placed.seed, inputs, item_bins)


def _oprf_receive(
    channel: Channel, inputs: U8, timeout: float | None, *, acknowledged: bool = False
) -> U8:
    """KKRT OPRF receiver for one input per bin: returns ``F_j(inputs[j])``, ``(bins, 16)``.

    ``acknowledged`` (the union's members): the sender acknowledges every chunk of ``u`` but
    the last, and a second thread awaits that while this one encodes the next chunk. A
    provider's node holds what it sends until it next receives (:mod:`privledger.node.release`):
    without the acknowledgements every chunk would wait for the last one."""
    seeds0, seeds1 = ot.iknp_send(channel, ot.CODE_BITS, timeout)
    code_key = recv_exact(channel, ot.BLOCK, timeout, "code key")
    receiver = ot.KkrtReceiver(seeds0, seeds1, code_key)
    out = np.empty((len(inputs), ot.BLOCK), dtype=np.uint8)
    chunks = _chunks(len(inputs))
    with ThreadPoolExecutor(1, thread_name_prefix="oprf-ack") as aside:
        pending: Future[None] | None = None
        try:
            for k, (lo, hi) in enumerate(chunks):
                u, t0_rows = receiver.encode(inputs[lo:hi], offset=lo)
                if pending is not None:
                    pending.result()  # turn-based: the acknowledgement before the next chunk
                send_records(channel, u)
                if acknowledged and k + 1 < len(chunks):
                    pending = aside.submit(_recv_acknowledgement, channel, timeout)
                out[lo:hi] = ot.KkrtReceiver.outputs(t0_rows, offset=lo)
        except BaseException:
            channel.close()  # a waiting acknowledgement fails at once, not at its timeout
            raise
    return out


def _recv_acknowledgement(channel: Channel, timeout: float | None) -> None:
    if channel.recv(timeout) != _ACKNOWLEDGEMENT:
        raise ChannelError("peer sent a malformed acknowledgement")


_ACKNOWLEDGEMENT = b""


def _oprf_send(
    channel: Channel, bins: int, timeout: float | None, *, acknowledge: bool = False
) -> ot.KkrtSender:
    """KKRT OPRF sender for ``bins`` bins: a key that evaluates ``F_j`` at any input;
    ``acknowledge`` every chunk of ``u`` but the last (see :func:`_oprf_receive`)."""
    choices = ot.random_bits(ot.CODE_BITS)
    seeds = ot.iknp_receive(channel, choices, timeout)
    code_key = secrets.token_bytes(ot.BLOCK)
    channel.send(code_key)
    sender = ot.KkrtSender(choices, seeds, code_key, bins)
    chunks = _chunks(bins)
    for k, (lo, hi) in enumerate(chunks):
        u = recv_records(channel, (hi - lo) // 8, timeout, count=ot.CODE_BITS)
        if acknowledge and k + 1 < len(chunks):
            channel.send(_ACKNOWLEDGEMENT)
        sender.receive(u, offset=lo)
    return sender


def _oprf_tags(sender: ot.KkrtSender, digest: U8, loc: I64, width: int) -> U8:
    """``F_{h_i(x)}(kappa(x, i))[:width]`` for every item and hash index: ``(3, n, width)``."""
    n = len(digest)
    tags = np.empty((cuckoo.HASHES, n, width), dtype=np.uint8)
    for i in range(cuckoo.HASHES):
        index = np.full(n, i, dtype=np.uint8)
        for lo in range(0, n, _EVAL_CHUNK):
            hi = min(lo + _EVAL_CHUNK, n)
            inputs = kkrt.with_hash_index(digest[lo:hi], index[lo:hi])
            bins = loc[i, lo:hi].astype(np.uint64)
            tags[i, lo:hi] = sender.evaluate(bins, inputs)[:, :width]
    return tags


def _chunks(bins: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + CHUNK_BINS, bins)) for lo in range(0, bins, CHUNK_BINS)]


# --- small helpers -------------------------------------------------------------------------


def _value_bytes(n_leader: int) -> int:
    """Intersection value width: a false match among ``n_leader`` checks <= 2^-40."""
    return min(ot.BLOCK, math.ceil((STAT_SECURITY + math.log2(max(n_leader, 1))) / 8))


def _union_tag_bytes(n_receiver: int, n_member: int) -> int:
    """Union tag width: ``n_member`` tags against ``3 n_receiver``, false match <= 2^-40."""
    bits = STAT_SECURITY + math.log2(max(3 * n_receiver, 1)) + math.log2(max(n_member, 1))
    return min(ot.BLOCK, math.ceil(bits / 8))


def _rows(array: U8) -> list[bytes]:
    data = np.ascontiguousarray(array).tobytes()
    width = array.shape[1]
    return [data[i : i + width] for i in range(0, len(data), width)]


def _prefix(rows: U8) -> npt.NDArray[np.uint64]:
    padded = np.zeros((len(rows), 8), dtype=np.uint8)
    take = min(8, rows.shape[1])
    padded[:, :take] = rows[:, :take]
    return padded.view(">u8").reshape(-1).astype(np.uint64)


def _member(needles: U8, haystack: U8) -> Bools:
    """Exact row membership of each needle in ``haystack`` (same width)."""
    found = np.zeros(len(needles), dtype=np.bool_)
    if len(needles) == 0 or len(haystack) == 0:
        return found
    needle_keys, hay_keys = _prefix(needles), _prefix(haystack)
    candidate = np.isin(needle_keys, hay_keys)
    if needles.shape[1] <= 8:
        return candidate
    # Tags wider than 8 bytes: confirm the (few) prefix matches on the full tag.
    pool = set(_rows(haystack[np.isin(hay_keys, needle_keys[candidate])]))
    index = np.flatnonzero(candidate)
    found[index] = [row in pool for row in _rows(needles[index])]
    return found
