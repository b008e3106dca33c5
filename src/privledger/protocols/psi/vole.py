"""Silent subfield VOLE (PCG from LPN) for RR22-PSI, semi-honest.

Output, for a length ``k`` fixed by both parties: the *sender* holds ``delta`` in GF(2^128) and
``B`` in GF(2^128)^k; the *receiver* holds ``A`` with entries in the 64-bit subspace ``G`` of
GF(2^128) (polynomials of degree < 64; see :mod:`.gf128`) and ``C`` in GF(2^128)^k, with

    C = B + A * delta,

``A`` and ``C`` pseudorandom to the sender, ``delta`` and ``B`` to the receiver. (``G`` is an
F_2-subspace, not a subfield; everything below is F_2-linear, which is all the correlation needs,
and ``a * delta`` is uniform for a uniform ``delta`` and any non-zero ``a``.)

Construction (Boyle, Couteau, Gilboa, Ishai, Kohl, Scholl, "Efficient Pseudorandom Correlation
Generators: Silent OT Extension and More", CRYPTO 2019; Weng, Yang, Katz, Wang, "Wolverine",
S&P 2021, for the GGM/COT layout; as libOTe's ``SilentVoleSender/Receiver``, our own code):

1. **Correlated OT.** 128 Chou-Orlandi base OTs (:mod:`.ot`), IKNP-extended without the final
   hash: the sender, base-OT receiver with choice bits ``delta``, gets ``q_j``; the receiver
   with choice bits ``r_j`` gets ``t_j``; ``q_j = t_j + r_j delta``. Hashing ``q_j`` and
   ``q_j + delta`` (fixed-key MMO, :func:`.ot.mmo_hash`, tweak ``j``) gives random OTs.
2. **Noise.** The receiver draws ``trees`` regular noise positions ``alpha_i`` (one leaf per
   GGM tree; leaf ``p`` of tree ``i`` is position ``p trees + i``, see :mod:`.pprf`) and
   non-zero values ``a_i`` in ``G``. 64 of the correlated OTs per tree, with choice bits the
   bits of ``a_i``, give ``sum_b X^b q = sum_b X^b t + a_i delta``: a base VOLE for the noise
   values, without another message.
3. **Puncturable PRF** (:mod:`.pprf`): the sender expands ``trees`` GGM trees; per level it
   sends both level sums, masked by the two keys of one random OT, and the receiver, choosing
   the side off its path, rebuilds all leaves but ``alpha_i``. The sender also sends
   ``d_i = sum(leaves_i) + s_i`` (``s_i`` its share of ``a_i delta``), from which the receiver
   gets leaf ``alpha_i`` plus ``a_i delta``. Now the length-``N`` vectors satisfy
   ``C' = B' + e * delta`` with ``e`` the sparse noise vector.
4. **LPN compression** with an expand-accumulate code (:mod:`.exacc`), rate 1/5: ``B = G B'``,
   ``C = G C'``, ``A = G e``. Its seed is drawn by the sender and sent with the level sums.

Long VOLEs are cut into independent instances of at most :data:`CHUNK_LENGTH` = 2^18 outputs
(:func:`plan`), each with its own trees, noise and code (the noise weight does not depend on the
length); all their correlated OTs come from one IKNP run. Memory is bounded by one instance,
and small instances are faster here: at 2^20 outputs, 2^18-output instances cost the receiver
0.55 s CPU against 1.28 s for one instance (its ~370 MB of temporaries are fresh pages and
cache misses), for ~55 more bits per PSI item of correlated-OT traffic. Each party compresses
an instance in a second thread while its main thread expands (and, the sender, sends) the next
one, so that on two cores the expander pass of one instance overlaps the GGM trees of the next.

Parameters, as libOTe's current ``EAConfigure`` for ``ExAcc7`` (libOTe is the RR22 authors'
library): code size ``N = 5 k`` (rate 1/5; libOTe's earlier releases used ``2 k``), expander
weight ``w = 7`` with an assumed relative minimum distance of 0.05, and the regular-noise
weight of libOTe's ``getRegNoiseWeight``, ``t = max(128, -kappa / log2(1 - 2 d))`` rounded up
to a multiple of 8 for ``kappa = 128`` bits against linear attacks: 848 for ``d = 0.05``
(the current libOTe floor is 40 instead of 128, which changes nothing here). Rate 1/5 costs
~0.07 s CPU per party at 2^20 over rate 1/2 (the expander pass, which dominates, reads ``k w``
entries either way; the GGM trees and the prefix XOR grow). Security: LPN over F_2 with the EA code,
regular noise (and its F_{2^64}-valued variant, as subfield VOLE in libOTe); fixed-key AES as
ideal permutations (GGM PRG, hash); CDH in the ROM for the base OTs. Semi-honest only: a
malicious sender could send inconsistent level sums (selective failure on ``alpha``).

:func:`check_correlation` is the debug check ``C = B + A delta`` (both halves in one place;
tests and the benchmark).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privledger.protocols.channel import (
    Channel,
    ChannelError,
    recv_exact,
    recv_records,
    send_records,
)
from privledger.protocols.psi import exacc, gf128, ot, pprf

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
Bits = npt.NDArray[np.bool_]

SECURITY = 128
SCALER = 5  # code size N = 5 k (libOTe EAConfigure)
EXPANDER_WEIGHT = 7
MIN_DISTANCE = {7: 0.05, 11: 0.1, 21: 0.1, 40: 0.2}  # libOTe EAConfigure
SUBFIELD_BITS = 64
SUBFIELD_BYTES = SUBFIELD_BITS // 8
BLOCK = 16
_GGM_TWEAK = 0x47474D00  # domain of the GGM random-OT hash
_MAX_LENGTH = 1 << 31
CHUNK_LENGTH = 1 << 18  # outputs per VOLE instance (see the module docstring)


def noise_weight(min_distance: float, security: int = SECURITY) -> int:
    """Regular noise weight ``t`` for ``security`` bits against linear attacks on a code of
    relative minimum distance ``min_distance`` (libOTe ``getRegNoiseWeight``)."""
    if not 0 < min_distance <= 0.5:
        raise ValueError("relative minimum distance must be in (0, 1/2]")
    if min_distance == 0.5:
        return SECURITY
    t = max(SECURITY, math.ceil(-security / math.log2(1 - 2 * min_distance)))
    return -(-t // 8) * 8


@dataclass(frozen=True)
class VoleParams:
    """``length`` outputs from ``trees`` GGM trees of ``2^depth`` leaves (``N`` noisy
    positions, at least ``2 * length``) compressed by an EA code of weight ``weight``."""

    length: int
    trees: int
    depth: int
    weight: int

    @property
    def code_size(self) -> int:
        return self.trees << self.depth

    @property
    def cot_count(self) -> int:
        """Correlated OTs: one per tree level, 64 per tree for the noise values."""
        return self.trees * (self.depth + SUBFIELD_BITS)

    @classmethod
    def for_length(cls, length: int, weight: int = EXPANDER_WEIGHT) -> VoleParams:
        if not 0 < length < _MAX_LENGTH:
            raise ValueError("VOLE length out of range")
        minimum = noise_weight(MIN_DISTANCE[weight])
        wanted = SCALER * length
        depth = max(1, math.floor(math.log2(max(wanted / minimum, 2))))
        trees = max(minimum, -(-wanted // (1 << depth)))
        return cls(length, trees, depth, weight)

    def code(self, seed: bytes) -> exacc.ExAccCode:
        return exacc.ExAccCode(self.length, self.code_size, self.weight, seed)


@dataclass(frozen=True)
class SenderVole:
    delta: bytes
    b: U8  # (k, 16)


@dataclass(frozen=True)
class ReceiverVole:
    a: U8  # (k, 8): the low 64 coefficients
    c: U8  # (k, 16)


def check_correlation(sender: SenderVole, receiver: ReceiverVole) -> bool:
    """Debug check: ``C = B + A * delta`` entry by entry."""
    product = gf128.FixedMultiplier(sender.delta, SUBFIELD_BYTES)(receiver.a)
    return bool(np.array_equal(receiver.c, sender.b ^ product))


# --- correlated OT (IKNP without the final hash) ----------------------------------------------


def cot_send(channel: Channel, count: int, timeout: float | None) -> tuple[bytes, U8]:
    """Correlated-OT sender: ``(delta, q)`` with ``q (count, 16)``; base-OT receiver."""
    width = -(-count // 128) * 16  # bytes per column, rows padded to a multiple of 128
    delta_bits = ot.random_bits(ot.KAPPA)
    seeds = ot.base_ot_receive(channel, delta_bits, timeout)
    u = recv_records(channel, width, timeout, count=ot.KAPPA)
    q = ot.prg_columns(seeds, width)
    q ^= u & (delta_bits.astype(np.uint8)[:, None] * np.uint8(0xFF))
    rows = ot.transpose_bits(q)[:count]
    return np.packbits(delta_bits, bitorder="little").tobytes(), np.ascontiguousarray(rows)


def cot_receive(
    channel: Channel,
    choices: Bits,
    timeout: float | None,
    while_waiting: Callable[[], object] | None = None,
) -> U8:
    """Correlated-OT receiver: ``t (count, 16)`` with ``t_j = q_j + choices_j delta``."""
    count = len(choices)
    width = -(-count // 128) * 16
    k0, k1 = ot.base_ot_send(channel, ot.KAPPA, timeout, while_waiting)
    t = ot.prg_columns(k0, width)
    padded = np.zeros(8 * width, dtype=np.bool_)
    padded[:count] = choices
    u = t ^ ot.prg_columns(k1, width) ^ np.packbits(padded, bitorder="little")[None, :]
    send_records(channel, u)
    return np.ascontiguousarray(ot.transpose_bits(t)[:count])


def _combine_powers(rows: U8, trees: int) -> U8:
    """``sum_b X^b rows[i, b]`` for ``rows`` of shape ``(trees, 64, 16)`` -> ``(trees, 16)``."""
    as_words = np.ascontiguousarray(rows).reshape(trees, SUBFIELD_BITS, BLOCK).view(np.uint64)
    return gf128.combine_x_powers(as_words).view(np.uint8).reshape(trees, BLOCK)


def _ggm_hash(rows: U8, first: int) -> U8:
    tweaks = np.arange(first, first + len(rows), dtype=np.uint64)
    return ot.mmo_hash(np.ascontiguousarray(rows), tweaks, _GGM_TWEAK)


# --- the two parties ----------------------------------------------------------------------------


def plan(length: int, weight: int = EXPANDER_WEIGHT) -> list[VoleParams]:
    """Independent VOLE instances of at most :data:`CHUNK_LENGTH` outputs each, together
    ``length``: memory is bounded by one instance's noisy vectors (~ 2 x 40 bytes per output)."""
    if not 0 < length < _MAX_LENGTH:
        raise ValueError("VOLE length out of range")
    count = -(-length // CHUNK_LENGTH)
    base, extra = divmod(length, count)
    return [VoleParams.for_length(base + (i < extra), weight) for i in range(count)]


def _split_cots(rows: U8, chunks: list[VoleParams]) -> list[tuple[U8, U8, int]]:
    """Per instance: (GGM OT rows ``(trees * depth, 16)``, noise OT rows ``(trees, 64, 16)``,
    the index of its first GGM OT among all -- the hash tweaks stay distinct across
    instances)."""
    out = []
    at = 0
    for params in chunks:
        first = at
        ggm = rows[at : at + params.trees * params.depth]
        at += params.trees * params.depth
        noise = rows[at : at + params.trees * SUBFIELD_BITS]
        at += params.trees * SUBFIELD_BITS
        out.append((ggm, noise.reshape(params.trees, SUBFIELD_BITS, BLOCK), first))
    return out


def vole_send(
    channel: Channel, length: int, timeout: float | None, out: U8 | None = None
) -> SenderVole:
    """Sender side of a VOLE of ``length`` (:func:`plan` instances): ``delta`` and ``B``
    (written into ``out`` when given: ``(length, 16)`` bytes of contiguous rows, e.g. the first
    16 bytes of a wider table's rows).

    Messages: base-OT ``A`` out, ``B`` points in, IKNP ``u`` in (correlated OTs for every
    instance at once); then per instance one message with its code seed, masked level sums and
    tree corrections, sent as soon as its trees are expanded, and after each but the last the
    receiver's empty acknowledgement in: the exchange stays turn-based (both ends record the
    messages in one order), and a sender whose channel holds what it sends until it next
    receives (a provider's node, :mod:`privledger.node.release`) lets each instance out at
    once rather than all of them when the VOLE is over, so the receiver works on one instance
    while this side expands the next."""
    chunks = plan(length)
    if out is not None and (out.shape != (length, BLOCK) or out.strides[1] != 1):
        raise ValueError(f"need a ({length}, {BLOCK}) output of contiguous rows")
    b = np.empty((length, BLOCK), dtype=np.uint8) if out is None else out
    delta, q = cot_send(channel, sum(c.cot_count for c in chunks), timeout)
    spare = _Spare(chunks)
    # an instance's acknowledgement is awaited in a second thread while this one expands the
    # next: the round trip stays off this side's path, and every message is recorded in the
    # turn order (the acknowledgement of an instance after it, before the next instance)
    with _Compressor() as compressor, ThreadPoolExecutor(1, thread_name_prefix="vole-ack") as acks:
        acknowledged: Future[bytes] | None = None
        at = 0
        for i, (params, (ggm_q, noise_q, first)) in enumerate(
            zip(chunks, _split_cots(q, chunks), strict=True)
        ):
            seed = secrets.token_bytes(exacc.SEED_BYTES)
            message, leaves = _expand_instance(
                params, delta, ggm_q, noise_q, first, seed, spare.trees(i, params)
            )
            if acknowledged is not None:
                acknowledged.result()
            channel.send(message)  # first: the receiver expands while this side compresses
            if i + 1 < len(chunks):
                acknowledged = acks.submit(recv_exact, channel, 0, timeout, "VOLE acknowledgement")
            compressor.submit(params.code(seed), leaves, b[at : at + params.length], None, True)
            at += params.length
    return SenderVole(delta, b)


class _Spare:
    """Two sets of GGM buffers, alternated between instances: one instance's noisy leaves are
    compressed (in :class:`_Compressor`'s thread) while the next is expanded into the other
    set, and :meth:`_Compressor.submit` waits for that compression before the set is reused.
    Their pages are faulted in once per VOLE instead of once per instance."""

    def __init__(self, chunks: list[VoleParams]) -> None:
        trees, depth = max(params.trees for params in chunks), chunks[0].depth
        self._trees = [pprf.Buffers(trees, depth) for _ in range(min(2, len(chunks)))]

    def trees(self, instance: int, params: VoleParams) -> pprf.Buffers | None:
        """GGM buffers for ``instance``, or None (fresh arrays) if they do not fit (an
        instance one output longer can need one tree more, or a level more)."""
        buffers = self._trees[instance % len(self._trees)]
        return buffers if buffers.fits(params.trees, params.depth) else None


class _Compressor:
    """Runs the LPN compression of one instance in a second thread while the caller expands
    (or receives) the next one: both are compiled (:mod:`.jit`) and AES kernels that release
    the GIL. At most one instance waits, so the noisy vectors of at most two instances are alive
    at once."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vole-code")
        self._pending: Future[None] | None = None

    def __enter__(self) -> _Compressor:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._wait()
        finally:
            self._pool.shutdown()

    def submit(
        self,
        code: exacc.ExAccCode,
        noisy: U8,
        out: U8,
        sparse: tuple[exacc.SparseVector, U8] | None = None,
        accumulated: bool = False,
    ) -> None:
        """:meth:`.exacc.ExAccCode.dual_encode_into` in the second thread, after waiting for
        the previous instance (and raising its error)."""
        self._wait()
        self._pending = self._pool.submit(code.dual_encode_into, noisy, out, sparse, accumulated)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


def _expand_instance(
    params: VoleParams,
    delta: bytes,
    ggm_q: U8,
    noise_q: U8,
    first: int,
    seed: bytes,
    buffers: pprf.Buffers | None = None,
) -> tuple[bytes, U8]:
    """The instance's message (the code ``seed``, masked level sums, corrections; joined in
    one copy) and the prefix XOR of its noisy leaves ``(N, 16)`` (the EA code's accumulator,
    done while the last GGM level is written)."""
    trees, depth = params.trees, params.depth
    share = _combine_powers(noise_q, trees)  # s_i, with s_i + r_i = a_i delta
    roots = ot.random_bytes(trees, BLOCK)
    leaves, sums = pprf.expand_full(roots, depth, buffers, prefix=True)
    # level sums, tree-major like the OTs: OT j = i * depth + level
    order = np.ascontiguousarray(sums.transpose(2, 0, 1, 3)).reshape(trees * depth, 2, BLOCK)
    delta_row = np.frombuffer(delta, dtype=np.uint8)[None, :]
    masked = np.empty_like(order)
    masked[:, 0] = order[:, 0] ^ _ggm_hash(ggm_q, first)
    masked[:, 1] = order[:, 1] ^ _ggm_hash(ggm_q ^ delta_row, first)
    totals = sums[depth - 1, 0] ^ sums[depth - 1, 1]  # each tree's leaves: its last level sums
    corrections = totals ^ share
    message = b"".join((seed, masked.data, np.ascontiguousarray(corrections).data))
    return message, leaves.reshape(params.code_size, BLOCK)


def vole_receive(
    channel: Channel,
    length: int,
    timeout: float | None,
    while_waiting: Callable[[], object] | None = None,
) -> ReceiverVole:
    """Receiver side of a VOLE of ``length``: returns ``A`` and ``C``. ``while_waiting`` runs
    while the sender derives its base-OT keys."""
    chunks = plan(length)
    noise = [_draw_noise(params) for params in chunks]
    choices = np.concatenate([np.concatenate((path, bits)) for _, _, path, bits in noise])
    t = cot_receive(channel, choices, timeout, while_waiting)
    a = np.empty((length, SUBFIELD_BYTES), dtype=np.uint8)
    c = np.empty((length, BLOCK), dtype=np.uint8)
    spare = _Spare(chunks)
    with _Compressor() as compressor:
        at = 0
        for i, (params, drawn, cots) in enumerate(
            zip(chunks, noise, _split_cots(t, chunks), strict=True)
        ):
            payload = channel.recv_buffer(timeout)
            if i + 1 < len(chunks):
                channel.send(b"")  # acknowledged before this side works on it (:func:`vole_send`)
            code, leaves, sparse = _receive_instance(
                params, drawn, cots, payload, spare.trees(i, params)
            )
            span = slice(at, at + params.length)
            compressor.submit(code, leaves, c[span], (sparse, a[span]))
            at += params.length
    return ReceiverVole(a, c)


_Noise = tuple[I64, U8, Bits, Bits]


def _draw_noise(params: VoleParams) -> _Noise:
    """Punctured points, non-zero noise values and the matching OT choices of one instance."""
    trees, depth = params.trees, params.depth
    draws = np.frombuffer(secrets.token_bytes(8 * trees), dtype=np.uint64)
    points = (draws % np.uint64(1 << depth)).astype(np.int64)
    values = ot.random_bytes(trees, SUBFIELD_BYTES)
    zero = ~values.any(axis=1)
    values[zero, 0] = 1  # noise values are non-zero
    path_choices = pprf.off_path_bits(points, depth).T.reshape(-1)  # tree-major
    value_bits = np.unpackbits(values, axis=1, bitorder="little").astype(np.bool_).reshape(-1)
    return points, values, path_choices, value_bits


def _receive_instance(
    params: VoleParams,
    noise: _Noise,
    cots: tuple[U8, U8, int],
    payload: bytes | bytearray,
    buffers: pprf.Buffers | None,
) -> tuple[exacc.ExAccCode, U8, exacc.SparseVector]:
    """One instance's code and noisy vectors ``C'`` (``(N, 16)``) and ``e`` (sparse), which
    it compresses to ``C`` and ``A``."""
    trees, depth = params.trees, params.depth
    points, values, path_choices, _ = noise
    ggm_t, noise_t, first = cots
    expected = exacc.SEED_BYTES + trees * depth * 2 * BLOCK + trees * BLOCK
    if len(payload) != expected:
        raise ChannelError(f"VOLE message of {len(payload)} bytes, expected {expected}")
    body = np.frombuffer(payload, dtype=np.uint8)
    seed = body[: exacc.SEED_BYTES].tobytes()
    masked = body[exacc.SEED_BYTES : exacc.SEED_BYTES + trees * depth * 2 * BLOCK]
    masked = masked.reshape(trees * depth, 2, BLOCK)
    corrections = body[exacc.SEED_BYTES + trees * depth * 2 * BLOCK :].reshape(trees, BLOCK)
    share = _combine_powers(noise_t, trees)  # r_i
    picked = masked[np.arange(trees * depth), path_choices.astype(np.int64)] ^ _ggm_hash(
        ggm_t, first
    )
    chosen = np.ascontiguousarray(picked.reshape(trees, depth, BLOCK).transpose(1, 0, 2))
    leaves, others = pprf.expand_punctured(points, chosen, depth, buffers)
    column = np.arange(trees)
    leaves[points, column] = corrections ^ others ^ share  # leaf + a_i delta
    # C' as expanded and the sparse e apart: one expander pass encodes both
    sparse = exacc.SparseVector.of(params.code_size, points * trees + column, values)
    return params.code(seed), leaves.reshape(params.code_size, BLOCK), sparse
