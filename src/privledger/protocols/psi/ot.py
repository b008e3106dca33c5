"""Oblivious transfer for KKRT-PSI: base OT, IKNP extension, the KKRT batched OPRF, and helpers.

Layers (all semi-honest; every random value comes from :mod:`secrets`):

1. **Base OT** -- Chou and Orlandi, "The Simplest Protocol for Oblivious Transfer" (LATINCRYPT
   2015, ePrint 2015/267), batched, as *random* OT, over the prime-order group secp256k1 (SEC 2;
   order ``n``, cofactor 1) through libsecp256k1 (``coincurve``), the library that also signs
   this node's Ethereum transactions. Every point received from the peer is parsed as a
   compressed SEC 1 point, which checks that it is on the curve; a prime-order group has no
   small-order points, so the cofactor issues reported for CO15 on other curves (Genç, Iovino,
   Rial, "The simplest protocol for oblivious transfer" revisited, ePrint 2017/370) do not
   arise, and the identity cannot be encoded. The keys hash the index and the whole per-OT
   transcript ``(A, B_i)`` (as in the CO15 ePrint revision)::

       sender:    a <- Z_n,  A = a*G                                   --A-->
       receiver:  b_i <- Z_n, B_i = b_i*G + c_i*A,  k_i = H(i, A, B_i, b_i*A)   <--B_i--
       sender:    k0_i = H(i, A, B_i, a*B_i),  k1_i = H(i, A, B_i, a*B_i - a*A)

   ``H`` is BLAKE2b-128 with a domain-separation personalisation; points enter it in their
   33-byte compressed encoding. The receiver's choice is hidden perfectly (``B_i`` is uniform);
   the sender's other key is hidden under CDH in the random oracle model. (Version 1 used the
   prime-order subgroup of edwards25519 through libsodium; its variable-base multiplication,
   which re-checks subgroup membership each time, cost 127 us against libsecp256k1's 43 us,
   and the base OTs were a quarter of a 2^16 PSI.)

2. **IKNP OT extension** -- Ishai, Kilian, Nissim, Petrank, "Extending Oblivious Transfers
   Efficiently" (CRYPTO 2003), in its random-OT form: ``KAPPA = 128`` base OTs (roles swapped),
   a PRG (AES-128-CTR keyed by each base-OT key) and a correlation-robust hash turn them into
   ``count`` random OTs. Used here to produce the ``CODE_BITS = 512`` base OTs KKRT needs.

3. **KKRT batched OPRF** -- Kolesnikov, Kumaresan, Rosulek, Trieu, "Efficient Batched
   Oblivious PRF with Applications to Private Set Intersection" (CCS 2016, ePrint 2016/799):
   the IKNP matrix with rows ``C(r_j)`` of a *pseudorandom code* of width ``CODE_BITS = 512``
   instead of repetition-code rows. KKRT16 (Sec. 4 and its parameter discussion) shows that a
   pseudorandom code of width >= 424-448 bits gives the needed minimum distance
   (>= kappa = 128, except with probability 2^-40) for the set sizes of interest; we use 512,
   as libOTe's ``KkrtNcoOt`` does: 4 AES blocks, byte and block aligned. The code is
   ``C(x) = AES_k(x xor tau_0) || ... || AES_k(x xor tau_3)`` with a fresh AES key ``k`` drawn
   by the OPRF sender per run and four fixed distinct tweaks ``tau_b``.

   Receiver (per bin ``j`` with 128-bit input ``r_j``): seeds ``(s0_i, s1_i)`` of the 512 OTs give
   columns ``t0_i = G(s0_i)``, ``t1_i = G(s1_i)`` of ``m`` bits; it sends
   ``u_i = t0_i xor t1_i xor C(r)_i`` (column ``i`` of the code matrix) and outputs
   ``F(j, r_j) = H(j, row_j(T0))``. Sender with choice bits ``s`` and seeds ``s_{s_i},i``:
   ``q_i = G(seed_i) xor s_i * u_i``, so ``row_j(Q) = row_j(T0) xor (C(r_j) AND s)``; it
   evaluates ``F(j, y) = H(j, row_j(Q) xor (C(y) AND s))`` for any ``y``.

**Hash** ``H(j, v)`` for a 512-bit ``v = v_0 || v_1 || v_2 || v_3`` and bin index ``j``: a
Matyas-Meyer-Oseas chain over the fixed-key AES permutation ``pi`` (key :data:`_FIXED_KEY`),
started from a tweak that encodes ``j`` and the domain::

    h = tweak(j);  for b in 0..3:  x = h xor v_b;  h = pi(x) xor x;   H(j, v) = h  (128 bits)

modelled as a tweakable correlation-robust hash with ``pi`` an ideal permutation (the setting of
Guo, Katz, Wang, Yu, "Efficient and Secure Multiparty Computation from Fixed-Key Block Ciphers",
S&P 2020, whose MMO-style ``pi(x) xor x`` it uses; the bin index is the tweak, so rows of different
bins never share a hash input). Each of the 4 steps is one AES call over the whole batch.

**Bit matrices** are ``uint8`` arrays, one row per row, bit ``c`` of a row being
``(row[c >> 3] >> (c & 7)) & 1`` (numpy ``bitorder="little"``). :func:`transpose_bits`
transposes them with 8x8 bit-block transposes on ``uint64`` words (3 delta swaps), vectorised
over the whole matrix. For wide matrices (``R < C`` bytes, ``R`` a multiple of 64, ``C`` of 8 --
the 512-row PRG matrices) the byte-level gathers, which dominate, are replaced by 8x8 *byte*
transposes done with the same delta swaps across eight ``uint64`` arrays, so that numpy only
moves whole words (about 2.5x faster there).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
import threading
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from coincurve import PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from privledger.protocols.channel import Channel, ChannelError, recv_records, send_records
from privledger.protocols.psi import jit

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
Bits = npt.NDArray[np.bool_]

KAPPA = 128  # computational security parameter; number of base OTs
CODE_BITS = 512  # KKRT pseudorandom code width (KKRT16: >= 424-448 for 2^-40; libOTe: 512)
CODE_BYTES = CODE_BITS // 8
BLOCK = 16
POINT_BYTES = 33  # compressed SEC 1 encoding of a secp256k1 point

_FIXED_KEY = bytes.fromhex("8a4f2c1e9b7d3a6f0e5c8b2d4a1f7e39")  # public; pi = AES-128 under it
_CODE_TWEAKS = np.frombuffer(
    hashlib.blake2b(b"privledger/kkrt/code-tweaks", digest_size=4 * BLOCK).digest(),
    dtype=np.uint8,
).reshape(4, BLOCK)
_BASE_OT_PERSON = b"pl/co15-ot/v2"
_IKNP_TWEAK = 0x49_4B_4E_50  # "IKNP": domain of the extension hash, vs. KKRT bin tweaks
_AES_CHUNK_BLOCKS = 1 << 20  # 16 MiB per AES call: bounded temporaries, well under API limits


class OtError(ChannelError):
    """A base-OT or OT-extension message from the peer is malformed."""


# --- AES primitives over numpy buffers ------------------------------------------------------


def aes_ecb(key: bytes, blocks: U8, out: U8 | None = None) -> U8:
    """AES-128-ECB of a C-contiguous array whose size is a multiple of 16 bytes, same shape.

    Encrypts in chunks straight into ``out`` (``update_into``); ``out`` may alias ``blocks``.
    ``update_into`` wants 15 bytes of room past its output, and (cryptography >= 51) an output
    that does not overlap its input: the last block of ``out`` is encrypted through a small
    spare, and an in-place call goes through a per-thread spare chunk that is allocated once
    (a fresh 16 MiB buffer per call costs ~4,000 page faults).
    """
    if blocks.size % BLOCK:
        raise ValueError("AES input must be a whole number of 16-byte blocks")
    src = np.ascontiguousarray(blocks).reshape(-1)
    if out is None:
        out = np.empty(blocks.shape, dtype=np.uint8)
    dst = out.reshape(-1)
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    chunk = _AES_CHUNK_BLOCKS * BLOCK
    if np.shares_memory(src, dst):
        spare = _spare(min(chunk, dst.size) + BLOCK)
        for lo in range(0, src.size, chunk):
            hi = min(lo + chunk, src.size)
            encryptor.update_into(src[lo:hi].data, spare.data)
            dst[lo:hi] = spare[: hi - lo]
        return out
    for lo in range(0, src.size, chunk):
        hi = min(lo + chunk, src.size)
        if hi + BLOCK - 1 <= dst.size:
            encryptor.update_into(src[lo:hi].data, dst[lo : hi + BLOCK - 1].data)
            continue
        last = hi - BLOCK  # the end of out: all but the last block directly, that one spared
        if last > lo:
            encryptor.update_into(src[lo:last].data, dst[lo : last + BLOCK - 1].data)
        tail = np.empty(2 * BLOCK, dtype=np.uint8)
        encryptor.update_into(src[last:hi].data, tail.data)
        dst[last:hi] = tail[:BLOCK]
    return out


_SPARES = threading.local()


def _spare(size: int) -> U8:
    """A per-thread scratch buffer of at least ``size`` bytes, kept for the thread's next call."""
    buffer: U8 | None = getattr(_SPARES, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, dtype=np.uint8)
        _SPARES.buffer = buffer
    return buffer[:size]


def prg_columns(seeds: U8, nbytes: int, offset: int = 0) -> U8:
    """Row ``i`` is bytes ``offset .. offset + nbytes`` of ``G(seeds[i])``: :class:`ColumnPrg`."""
    return ColumnPrg(seeds).read(nbytes, offset)


class ColumnPrg:
    """``G(seeds[i])`` for every seed, read in chunks: ``G`` is AES-128-CTR keyed by the seed,
    counter starting at 0. A read that starts where the previous one ended continues the same
    AES-CTR states, so a table produced chunk by chunk costs one key schedule per seed, not one
    per seed and chunk; any other ``offset`` (a multiple of 16) starts new states there."""

    def __init__(self, seeds: U8) -> None:
        self._seeds = seeds
        self._encryptors: list[CipherContext] = []
        self._position = -1

    def read(self, nbytes: int, offset: int = 0) -> U8:
        """Row ``i`` is bytes ``offset .. offset + nbytes`` of ``G(seeds[i])``."""
        if offset != self._position:
            if offset % BLOCK:
                raise ValueError("PRG offset must be a multiple of 16 bytes")
            iv = (offset // BLOCK).to_bytes(BLOCK, "big")
            self._encryptors = [
                Cipher(algorithms.AES(seed.tobytes()), modes.CTR(iv)).encryptor()
                for seed in self._seeds
            ]
        out = np.empty((len(self._seeds), nbytes), dtype=np.uint8)
        zeros = np.zeros(nbytes, dtype=np.uint8)
        buf = np.empty(nbytes + BLOCK, dtype=np.uint8)
        for row, encryptor in zip(out, self._encryptors, strict=True):  # <= 512 columns
            written = encryptor.update_into(zeros.data, buf.data)
            row[:] = buf[:written]
        self._position = offset + nbytes
        return out


def mmo_hash(rows: U8, tweaks: U64, domain: int) -> U8:
    """``H(tweak, row)`` for each row of ``rows`` (``(N, 16 * w)``), see the module docstring.

    Returns ``(N, 16)``. ``tweaks`` (the bin indices) has ``N`` entries.
    """
    count, width = rows.shape
    if width % BLOCK or len(tweaks) != count:
        raise ValueError("rows must be whole blocks, one tweak per row")
    h = np.empty((count, 2), dtype="<u8")
    h[:, 0] = tweaks
    h[:, 1] = domain
    state = h.view(np.uint8).reshape(count, BLOCK)
    x = np.empty_like(state)
    enc = np.empty_like(state)
    for b in range(width // BLOCK):
        np.bitwise_xor(state, rows[:, b * BLOCK : (b + 1) * BLOCK], out=x)
        aes_ecb(_FIXED_KEY, x, enc)
        np.bitwise_xor(enc, x, out=state)
    return state


# --- bit-matrix transpose -------------------------------------------------------------------

_M1 = np.uint64(0x00AA00AA00AA00AA)
_M2 = np.uint64(0x0000CCCC0000CCCC)
_M3 = np.uint64(0x00000000F0F0F0F0)
_S1, _S2, _S3 = np.uint64(7), np.uint64(14), np.uint64(28)


def _transpose8x8(words: U64) -> None:
    """In place: each uint64 holds an 8x8 bit block (byte = row, bit = column); transpose it."""
    t = np.empty_like(words)
    for mask, shift in ((_M1, _S1), (_M2, _S2), (_M3, _S3)):
        np.right_shift(words, shift, out=t)
        np.bitwise_xor(t, words, out=t)
        np.bitwise_and(t, mask, out=t)
        np.bitwise_xor(words, t, out=words)
        np.left_shift(t, shift, out=t)
        np.bitwise_xor(words, t, out=words)


def transpose_bits(matrix: U8) -> U8:
    """Transpose a bit matrix of ``R`` rows by ``8 C`` columns into ``8 C`` rows by ``R`` bits.

    ``matrix`` is ``(R, C)`` ``uint8`` with ``R`` a multiple of 8; the result is
    ``(8 C, R // 8)``. Vectorised: a gather into 8x8 blocks, three delta swaps on ``uint64``
    words, a scatter -- done over cache-sized tiles of rows or byte columns (~1 MiB each).
    """
    rows, cols = matrix.shape
    if rows % 8:
        raise ValueError(f"row count must be a multiple of 8, not {rows}")
    out = np.empty((8 * cols, rows // 8), dtype=np.uint8)
    if rows % 64 == 0 and cols % 8 == 0 and rows * cols and jit.loaded():
        _transpose_blocks(np.ascontiguousarray(matrix).view("<u8"), out.view("<u8"))
    elif rows < cols and rows % 64 == 0 and cols % 8 == 0:
        step = max(8, (_WIDE_TILE_BYTES // rows) // 8 * 8)
        for lo in range(0, cols, step):
            hi = min(lo + step, cols)
            _transpose_wide(np.ascontiguousarray(matrix[:, lo:hi]), out[8 * lo : 8 * hi])
    elif rows >= cols:
        step = max(8, (_TILE_BYTES // max(cols, 1)) // 8 * 8)
        for lo in range(0, rows, step):
            hi = min(lo + step, rows)
            _transpose_tile(matrix[lo:hi], out[:, lo // 8 : hi // 8])
    else:
        step = max(1, _TILE_BYTES // rows)
        for lo in range(0, cols, step):
            hi = min(lo + step, cols)
            _transpose_tile(matrix[:, lo:hi], out[8 * lo : 8 * hi])
    return out


@jit.kernel
def _transpose_blocks(matrix: U64, out: U64) -> None:
    """:func:`transpose_bits` of ``(R, C)`` bytes, ``R % 64 == C % 8 == 0``, as words: ``matrix``
    ``(R, C / 8)`` and ``out`` ``(8 C, R / 64)``; each 64x64 bit block in registers by six rounds
    of swaps (row ``k`` with ``k + j`` exchanging the columns with bit ``j`` set and clear). Used
    once numba is loaded (:func:`.jit.loaded`): ~5x the numpy tiles' speed on RR22's IKNP
    matrix."""
    rows, words = matrix.shape
    block = np.empty(64, dtype=np.uint64)
    for column in range(words):
        for group in range(rows // 64):
            for i in range(64):
                block[i] = matrix[64 * group + i, column]
            j = 32
            mask = np.uint64(0x00000000FFFFFFFF)
            while j:
                shift = np.uint64(j)
                k = 0
                while k < 64:
                    t = ((block[k] >> shift) ^ block[k + j]) & mask
                    block[k] ^= t << shift
                    block[k + j] ^= t
                    k = (k + j + 1) & ~j
                j >>= 1
                mask ^= mask << np.uint64(j)
            for i in range(64):
                out[64 * column + i, group] = block[i]


_TILE_BYTES = 1 << 20
_WIDE_TILE_BYTES = 1 << 19

# 8x8 byte transpose across eight uint64 words: (distance, shift, mask) of the 3 delta swaps.
_BYTE_SWAPS = (
    (4, np.uint64(32), np.uint64(0x00000000FFFFFFFF)),
    (2, np.uint64(16), np.uint64(0x0000FFFF0000FFFF)),
    (1, np.uint64(8), np.uint64(0x00FF00FF00FF00FF)),
)


def _transpose_bytes8(words: U64, spare: U64) -> None:
    """In place: ``words`` is ``(G, 8, N)``; for every ``(g, n)`` the 8 words ``words[g, :, n]``
    form an 8x8 byte matrix (word = row, little-endian byte = column); transpose it.

    ``spare`` holds at least ``G * 4 * N`` words of scratch.
    """
    groups, _, count = words.shape
    for distance, shift, mask in _BYTE_SWAPS:
        pairs = words.reshape(groups, 4 // distance, 2, distance, count)
        low, high = pairs[:, :, 0], pairs[:, :, 1]
        t = spare[: low.size].reshape(low.shape)
        np.right_shift(low, shift, out=t)
        np.bitwise_xor(t, high, out=t)
        np.bitwise_and(t, mask, out=t)
        np.bitwise_xor(high, t, out=high)
        np.left_shift(t, shift, out=t)
        np.bitwise_xor(low, t, out=low)


def _transpose_wide(tile: U8, out: U8) -> None:
    """:func:`transpose_bits` of a C-contiguous ``(R, C)`` tile, ``R % 64 == C % 8 == 0``, using
    word moves only: rows -> 8x8 byte transposes -> 8x8 bit transposes -> 8x8 byte transposes."""
    rows, cols = tile.shape
    c8, rb = cols // 8, rows // 8
    # x[k, rb, c8] = bytes 8 c8 .. 8 c8 + 7 of row 8 rb + k
    x = np.ascontiguousarray(tile.view("<u8").reshape(rb, 8, c8).transpose(1, 0, 2))
    spare = np.empty(x.size // 2, dtype=np.uint64)
    _transpose_bytes8(x.reshape(1, 8, rb * c8), spare)
    # x[b, rb, c8]: byte k = tile[8 rb + k, 8 c8 + b], an 8x8 bit block of byte column 8 c8 + b
    _transpose8x8(x.reshape(-1))
    # now byte k of x[b, rb, c8] holds bits of rows 8 rb .. 8 rb + 7 for output row 8 (8 c8 + b) + k
    grouped = x.reshape(8 * (rb // 8), 8, c8)
    _transpose_bytes8(grouped, spare)
    # grouped[(b, rb8), k, c8]: byte j = output row 64 c8 + 8 b + k, input rows 64 rb8 + 8 j ..
    words = out.reshape(c8, 8, 8, rb // 8, 8).view("<u8").reshape(c8, 8, 8, rb // 8)
    words[...] = grouped.reshape(8, rb // 8, 8, c8).transpose(3, 0, 2, 1)


def _transpose_tile(tile: U8, out: U8) -> None:
    rows, cols = tile.shape
    # blocks[rb, c, k] = tile[8 rb + k, c]: one uint64 per 8x8 block, byte k = block row k.
    blocks = tile.reshape(rows // 8, 8, cols).transpose(0, 2, 1).copy(order="C")
    _transpose8x8(blocks.view("<u8").reshape(rows // 8, cols))
    # Now byte k of block (rb, c) holds output row 8 c + k, bits 8 rb .. 8 rb + 7.
    out.reshape(cols, 8, rows // 8)[...] = blocks.transpose(1, 2, 0)


def take_rows(matrix: U8, index: npt.NDArray[np.integer]) -> U8:
    """``matrix[index]`` for a C-contiguous 2-D ``uint8`` array, one memcpy per row (a void
    view; numpy's 2-D fancy indexing copies byte by byte and is several times slower)."""
    width = matrix.shape[1]
    if width == 0 or not matrix.flags.c_contiguous:
        taken: U8 = matrix[index]
        return taken
    rows = matrix.view(np.dtype((np.void, width))).reshape(-1)[index]
    out: U8 = rows.view(np.uint8).reshape(len(rows), width)
    return out


def put_rows(matrix: U8, index: npt.NDArray[np.integer], values: U8) -> None:
    """``matrix[index] = values`` row by row (see :func:`take_rows`)."""
    width = matrix.shape[1]
    if width == 0 or not matrix.flags.c_contiguous:
        matrix[index] = values
        return
    void = np.dtype((np.void, width))
    matrix.view(void).reshape(-1)[index] = np.ascontiguousarray(values).view(void).reshape(-1)


def random_bytes(count: int, width: int) -> U8:
    """``(count, width)`` uniformly random (writable) bytes from :mod:`secrets`."""
    raw = bytearray(secrets.token_bytes(count * width))
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, width)


def random_bits(count: int) -> Bits:
    """``count`` uniformly random bits from :mod:`secrets`."""
    raw = np.frombuffer(secrets.token_bytes((count + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[:count].astype(np.bool_)


# --- base OT: Chou-Orlandi over secp256k1 ----------------------------------------------------

_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # of secp256k1 (SEC 2)


def _scalar() -> bytes:
    """A uniform non-zero scalar modulo the group order, 32 bytes big-endian."""
    return (1 + secrets.randbelow(_ORDER - 1)).to_bytes(32, "big")


def _point(data: bytes) -> PublicKey:
    """The peer's point: a canonical compressed encoding of a point on the curve, else
    :class:`OtError` (the identity has no such encoding)."""
    if len(data) != POINT_BYTES or data[0] not in (2, 3):
        raise OtError("peer sent a point that is not a compressed secp256k1 point")
    try:
        return PublicKey(data)
    except ValueError:
        raise OtError("peer sent a point that is not on secp256k1") from None


def _negated(point: bytes) -> PublicKey:
    """``-P`` from the compressed encoding of ``P``: same x, the other y (parity byte flipped)."""
    return PublicKey(bytes([point[0] ^ 1]) + point[1:])


def _ot_key(index: int, a_point: bytes, b_point: bytes, shared: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=BLOCK, person=_BASE_OT_PERSON)
    h.update(struct.pack(">Q", index))
    h.update(a_point)
    h.update(b_point)
    h.update(shared)
    return h.digest()


def base_ot_send(
    channel: Channel,
    count: int,
    timeout: float | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> tuple[U8, U8]:
    """Random-OT sender of ``count`` CO15 base OTs; returns the key pairs ``(k0, k1)``.

    Messages: sends ``A`` (33 bytes), then receives ``count`` points ``B_i``; ``while_waiting``
    runs in between (local work overlapping the receiver's).
    """
    a = _scalar()
    a_point = PublicKey.from_valid_secret(a).format()
    channel.send(a_point)
    if while_waiting is not None:
        while_waiting()
    b_points = recv_records(channel, POINT_BYTES, timeout, count=count)
    minus_a_a = _negated(PublicKey(a_point).multiply(a).format())
    k0 = np.empty((count, BLOCK), dtype=np.uint8)
    k1 = np.empty((count, BLOCK), dtype=np.uint8)
    for i in range(count):
        b_point = b_points[i].tobytes()
        shared = _point(b_point).multiply(a)
        k0[i] = np.frombuffer(_ot_key(i, a_point, b_point, shared.format()), dtype=np.uint8)
        try:
            other = PublicKey.combine_keys([shared, minus_a_a])
        except ValueError:  # a*B_i = a*A, i.e. B_i = A: the sum is the identity
            raise OtError("peer sent a degenerate base-OT point") from None
        k1[i] = np.frombuffer(_ot_key(i, a_point, b_point, other.format()), dtype=np.uint8)
    return k0, k1


def base_ot_receive(channel: Channel, choices: Bits, timeout: float | None = None) -> U8:
    """Random-OT receiver of CO15 base OTs with the given choice bits; returns ``k_{c_i}``."""
    count = len(choices)
    try:
        a_bytes = channel.recv(timeout)
        a_point = _point(a_bytes)
    except ChannelError as exc:
        raise OtError(f"bad base-OT first message: {exc}") from None
    b_points = np.empty((count, POINT_BYTES), dtype=np.uint8)
    keys = np.empty((count, BLOCK), dtype=np.uint8)
    for i in range(count):
        b = _scalar()
        b_point = PublicKey.from_valid_secret(b)
        if choices[i]:
            try:
                b_point = PublicKey.combine_keys([b_point, a_point])
            except ValueError:  # b*G = -A: probability 1/n; draw again
                raise OtError("degenerate base-OT draw; run again") from None
        encoded = b_point.format()
        shared = a_point.multiply(b).format()
        b_points[i] = np.frombuffer(encoded, dtype=np.uint8)
        keys[i] = np.frombuffer(_ot_key(i, a_bytes, encoded, shared), dtype=np.uint8)
    send_records(channel, b_points)
    return keys


# --- IKNP random-OT extension ---------------------------------------------------------------


def _pad8(count: int) -> int:
    return -(-count // 8) * 8


def iknp_receive(
    channel: Channel,
    choices: Bits,
    timeout: float | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> U8:
    """Extension receiver: ``len(choices)`` random OTs; returns the chosen keys ``(N, 16)``.

    Acts as *sender* of the ``KAPPA`` base OTs, then sends ``u`` (``KAPPA`` columns of ``N``
    bits). Messages: ``A`` out, ``B`` in, ``u`` out; ``while_waiting`` runs after ``A`` left.
    """
    count = len(choices)
    width = _pad8(count) // 8
    k0, k1 = base_ot_send(channel, KAPPA, timeout, while_waiting)
    t = prg_columns(k0, width)
    padded = np.zeros(_pad8(count), dtype=np.bool_)
    padded[:count] = choices
    r = np.packbits(padded, bitorder="little")
    u = t ^ prg_columns(k1, width) ^ r[None, :]
    send_records(channel, u)
    rows = transpose_bits(t)[:count]  # (N, KAPPA / 8): row i is t_i
    return _iknp_hash(rows)


def iknp_send(
    channel: Channel,
    count: int,
    timeout: float | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> tuple[U8, U8]:
    """Extension sender: ``count`` random OTs; returns the key pairs ``(k0, k1)``, ``(N, 16)``.
    ``while_waiting`` runs after the base-OT points ``B`` left, while the peer derives its keys.
    """
    width = _pad8(count) // 8
    delta_bits = random_bits(KAPPA)
    seeds = base_ot_receive(channel, delta_bits, timeout)
    if while_waiting is not None:
        while_waiting()
    u = recv_records(channel, width, timeout, count=KAPPA)
    q = prg_columns(seeds, width)
    q ^= u & (delta_bits.astype(np.uint8)[:, None] * np.uint8(0xFF))
    rows = transpose_bits(q)[:count]  # row i is q_i = t_i xor r_i * delta
    delta = np.packbits(delta_bits, bitorder="little")
    return _iknp_hash(rows), _iknp_hash(rows ^ delta[None, :])


def _iknp_hash(rows: U8) -> U8:
    return mmo_hash(rows, np.arange(len(rows), dtype=np.uint64), _IKNP_TWEAK)


# --- KKRT batched OPRF ----------------------------------------------------------------------


def code_words(code_key: bytes, inputs: U8) -> U8:
    """The pseudorandom code ``C(x)`` of each 16-byte input: ``(N, 64)``."""
    words = np.tile(inputs, (1, 4))  # one contiguous copy; a broadcast xor is ~10x slower
    words ^= _CODE_TWEAKS.reshape(1, CODE_BYTES)
    return aes_ecb(code_key, words, words)


class KkrtReceiver:
    """OPRF receiver: holds the 512 seed pairs (it was the *sender* of those OTs)."""

    def __init__(self, seeds0: U8, seeds1: U8, code_key: bytes) -> None:
        if seeds0.shape != (CODE_BITS, BLOCK) or seeds1.shape != (CODE_BITS, BLOCK):
            raise ValueError("need CODE_BITS seed pairs of 16 bytes")
        self._prg0 = ColumnPrg(seeds0)
        self._prg1 = ColumnPrg(seeds1)
        self._code_key = code_key

    def encode(self, inputs: U8, offset: int = 0) -> tuple[U8, U8]:
        """For the inputs of bins ``offset .. offset + m``: ``(u, t0_rows)``.

        ``m`` and ``offset`` must be multiples of 128. ``u`` is the ``(CODE_BITS, m / 8)``
        column block to send; ``t0_rows`` the ``(m, 64)`` rows for :meth:`outputs`.
        """
        m = len(inputs)
        if m % 128 or offset % 128:
            raise ValueError("bin chunks must be multiples of 128 bins")
        t0 = self._prg0.read(m // 8, offset // 8)
        u = self._prg1.read(m // 8, offset // 8)
        u ^= t0
        u ^= transpose_bits(code_words(self._code_key, inputs))
        return u, transpose_bits(t0)

    @staticmethod
    def outputs(t0_rows: U8, offset: int = 0) -> U8:
        """``F(j, r_j) = H(j, row_j(T0))`` for bins ``j = offset ..``: ``(m, 16)``."""
        tweaks = np.arange(offset, offset + len(t0_rows), dtype=np.uint64)
        return mmo_hash(t0_rows, tweaks, KKRT_DOMAIN)


KKRT_DOMAIN = 0x4B4B5254  # "KKRT"


class KkrtSender:
    """OPRF sender: choice bits ``s`` and the chosen seeds of the 512 OTs, for ``bins`` bins."""

    def __init__(self, choices: Bits, seeds: U8, code_key: bytes, bins: int) -> None:
        if choices.shape != (CODE_BITS,) or seeds.shape != (CODE_BITS, BLOCK):
            raise ValueError("need CODE_BITS choice bits and seeds")
        if bins % 128:
            raise ValueError("the bin count must be a multiple of 128")
        self._mask = choices.astype(np.uint8)[:, None] * np.uint8(0xFF)
        self._s = np.packbits(choices, bitorder="little")
        self._prg = ColumnPrg(seeds)
        self._code_key = code_key
        self._bins = bins
        self._q: U8 | None = None  # all rows, only for receive()/evaluate()

    def rows(self, u: U8, offset: int = 0) -> U8:
        """The rows ``row_j(Q) = row_j(T0) xor (C(r_j) AND s)`` for bins ``offset .. offset + m``
        from the receiver's column block ``u`` (``(CODE_BITS, m / 8)``): ``(m, 64)``, not kept."""
        if u.ndim != 2 or u.shape[0] != CODE_BITS or offset % 128 or u.shape[1] % 16:
            raise OtError("malformed KKRT column block")
        if offset + u.shape[1] * 8 > self._bins:
            raise OtError("KKRT column block beyond the table")
        q = self._prg.read(u.shape[1], offset // 8)
        q ^= u & self._mask
        return transpose_bits(q)

    def evaluate_rows(self, q_rows: U8, bins: U64, inputs: U8) -> U8:
        """``F(bins[k], inputs[k])`` given ``q_rows[k] = row_{bins[k]}(Q)``: ``(N, 16)``."""
        rows = code_words(self._code_key, inputs)
        rows &= self._s[None, :]
        rows ^= q_rows
        return mmo_hash(rows, bins, KKRT_DOMAIN)

    def receive(self, u: U8, offset: int = 0) -> None:
        """Absorb the receiver's column block ``u`` (``(CODE_BITS, m / 8)``) for bins
        ``offset .. offset + m`` and keep its rows for :meth:`evaluate`."""
        rows = self.rows(u, offset)
        if self._q is None:
            self._q = np.empty((self._bins, CODE_BYTES), dtype=np.uint8)
        self._q[offset : offset + len(rows)] = rows

    def evaluate(self, bins: U64, inputs: U8) -> U8:
        """``F(bins[k], inputs[k]) = H(bins[k], row(Q) xor (C(inputs[k]) AND s))``: ``(N, 16)``
        for bins whose rows were absorbed by :meth:`receive`."""
        if self._q is None:
            raise OtError("no KKRT column block received")
        return self.evaluate_rows(self._q[bins], bins, inputs)
