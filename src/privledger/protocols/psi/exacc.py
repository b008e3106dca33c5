"""Expand-accumulate (EA) codes for the LPN compression step of silent VOLE (:mod:`.vole`).

Boyle, Couteau, Gilboa, Ishai, Kohl, Resch, Scholl, "Correlated Pseudorandomness from
Expand-Accumulate Codes" (CRYPTO 2022, ePrint 2022/1014). The generator matrix is ``G = B A``:
``A`` is the ``N x N`` solid upper-triangular matrix (the *accumulator*: prefix XOR) and ``B`` the
``k x N`` *expander*, each row holding ``w`` uniformly random positions. A noisy vector ``e`` of
length ``N`` is compressed to ``k`` entries by the dual encoding ``y = B (A e)``: a prefix XOR
over ``e``, then for each output the XOR of ``w`` entries of the prefix sums. Both parties
compute it on their halves of the correlation, which it preserves because it is F_2-linear.

Parameters follow libOTe's ``EAConfigure`` (the RR22 authors' library; :mod:`.vole`): code
size ``N = 5 k``, a uniform (not regular) expander of weight 7, and the noise weight of
:func:`.vole.noise_weight` from the code's assumed relative minimum distance. The expander is
public and derived from a seed: positions are read from AES-128-CTR under the seed as 32-bit
words ``u`` and reduced by ``(u * N) >> 32`` (bias below ``N / 2^32``, irrelevant for a public
code). Not Silver (Couteau, Rindal, Raghuraman, "Silver", CRYPTO 2021), which was shown insecure
(Raghuraman, Rindal, Tanguy, "Expand-Convolute Codes for Pseudorandom Correlation Generators
from LPN", CRYPTO 2023, Sec. 1).

Entries are rows of ``W`` = 8, 16 or 24 bytes, XORed as 64-bit words. The expander pass is a
compiled kernel (:mod:`.jit`): per output, ``w`` random rows XORed in registers, positions
reduced from the keystream as they are read (no index arrays). A sparse vector (the VOLE
receiver's noise, one entry per GGM tree) is encoded in the same pass from its prefix XOR
(:class:`SparseVector`), never written out as ``N`` rows. Measured per 2^18-output VOLE
instance (``N`` = 1.1M rows of 16 bytes, 21 MB, out of cache) on this machine: ~8 ns per
16-byte gather in the kernel against ~10 ns for numpy's ``take`` in batches and ~21 ns for a
kernel that XORs into the output row in memory; ~23 ms for the sender's ``B``, ~35 ms for
the receiver's ``C`` and ``A`` (~55 ms when the sparse part searched its points).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.psi import jit

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]
U16 = npt.NDArray[np.uint16]

SEED_BYTES = 16
CHUNK_ROWS = 1 << 15  # outputs per expander batch: the keystream of its positions stays in cache


@dataclass(frozen=True)
class ExAccCode:
    """The EA code with ``message_size`` outputs (``k``), ``code_size`` inputs (``N``) and
    expander row weight ``weight``; the expander is a function of ``seed``."""

    message_size: int
    code_size: int
    weight: int
    seed: bytes

    def __post_init__(self) -> None:
        if not 0 < self.message_size <= self.code_size < 1 << 32:
            raise ValueError("need 0 < k <= N < 2^32")
        if self.weight < 1 or len(self.seed) != SEED_BYTES:
            raise ValueError("need a positive weight and a 16-byte seed")

    def positions(self, lo: int, hi: int) -> I64:
        """Expander positions of outputs ``lo .. hi``: ``(hi - lo, weight)`` in ``0 .. N - 1``."""
        raw = self._stream(lo, hi).astype(np.uint64)
        raw *= np.uint64(self.code_size)
        raw >>= np.uint64(32)
        return raw.astype(np.int64).reshape(hi - lo, self.weight)

    def _stream(self, lo: int, hi: int) -> U32:
        """The 32-bit words of outputs ``lo .. hi`` (``weight`` each) that the positions are
        reduced from."""
        count = (hi - lo) * self.weight
        start = lo * self.weight * 4  # byte offset into the keystream, 4 bytes per position
        skip = start % 16
        iv = (start // 16).to_bytes(16, "big")
        encryptor = Cipher(algorithms.AES(self.seed), modes.CTR(iv)).encryptor()
        stream = encryptor.update(bytes(skip + 4 * count))[skip:]
        return np.frombuffer(stream, dtype="<u4")

    def dual_encode(self, noisy: U8) -> U8:
        """``B A e`` for ``e`` = ``noisy`` (``(N, W)`` bytes, consumed: it holds the prefix
        XOR afterwards): ``(k, W)``."""
        out = np.empty((self.message_size, noisy.shape[1] if noisy.ndim == 2 else 0), np.uint8)
        self.dual_encode_into(noisy, out)
        return out

    def dual_encode_into(
        self,
        noisy: U8,
        out: U8,
        sparse: tuple[SparseVector, U8] | None = None,
        accumulated: bool = False,
    ) -> None:
        """:meth:`dual_encode` of ``noisy`` (``(N, W)``, ``W`` = 8, 16 or 24, consumed) into
        ``out`` (``(k, W)`` rows of contiguous bytes: it may be a column range of a wider array,
        e.g. the first 16 bytes of 24-byte rows); with ``sparse = (vector, sparse_out)``, also
        that sparse vector's into ``sparse_out`` (``(k, 8)``), in the same pass over the
        expander positions. With ``accumulated``, ``noisy`` is its prefix XOR already
        (:func:`.pprf.expand_full` with ``prefix``)."""
        if noisy.ndim != 2 or noisy.shape[0] != self.code_size or noisy.shape[1] not in (8, 16, 24):
            raise ValueError(f"need ({self.code_size}, 8, 16 or 24) bytes")
        if out.shape != (self.message_size, noisy.shape[1]) or out.strides[1] != 1:
            raise ValueError("need a (k, W) output of contiguous rows")
        vector, sparse_words = _NO_POINTS, np.zeros(0, dtype=np.uint64)
        if sparse is not None:
            vector, sparse_out = sparse
            if vector.length != self.code_size:
                raise ValueError("the sparse vector does not have the code's length")
            if sparse_out.shape != (self.message_size, 8) or not sparse_out.flags.c_contiguous:
                raise ValueError("need a contiguous (k, 8) output for the sparse vector")
            sparse_words = sparse_out.view("<u8").reshape(-1)
        if not accumulated:
            accumulate(noisy)
        source, words = noisy.view(np.uint64), out.view(np.uint64)
        size = np.uint64(self.code_size)
        for lo in range(0, self.message_size, CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, self.message_size)
            _expand(
                source,
                self._stream(lo, hi),
                size,
                self.weight,
                words[lo:hi],
                vector.segment,
                vector.prefix,
                sparse_words[lo:hi],
            )


@dataclass(frozen=True)
class SparseVector:
    """A vector of ``length`` 8-byte entries, zero but at some points, as the prefix XOR that
    the code reads: entry ``p`` of ``A e`` is ``prefix[segment[p]]``, ``segment[p]`` the number
    of points ``<= p`` (16 bits: ``2 N`` bytes, where ``A e`` as rows would be ``8 N``, and
    the ``prefix`` of one word per point stays in the L1 cache). A lookup is one load that does
    not depend on the others of its row; a search among the points from a coarse table of
    buckets cost more than the row's gathers themselves (its dependent loads and branches)."""

    length: int
    segment: U16
    prefix: U64

    @classmethod
    def of(cls, length: int, points: I64, values: U8) -> SparseVector:
        """The vector with ``values`` (``(t, 8)``, ``t < 2^16``) at the distinct ``points``."""
        if values.shape != (len(points), 8) or len(points) >= 1 << 16:
            raise ValueError("need (t, 8) values, one per point, t < 2^16")
        if len(points) and (points.min() < 0 or points.max() >= length):
            raise ValueError("points out of range")
        order = np.argsort(points)
        ascending = points[order]
        if np.any(ascending[1:] == ascending[:-1]):
            raise ValueError("points must be distinct")
        prefix = np.zeros(len(points) + 1, dtype=np.uint64)
        if len(points):
            np.bitwise_xor.accumulate(values.view("<u8").reshape(-1)[order], out=prefix[1:])
        runs = np.diff(np.concatenate(([0], ascending, [length])))
        segment = np.repeat(np.arange(len(points) + 1, dtype=np.uint16), runs)
        return cls(length, segment, prefix)


_NO_POINTS = SparseVector(0, np.zeros(0, dtype=np.uint16), np.zeros(1, dtype=np.uint64))


@jit.kernel
def _expand(
    source: U64,
    stream: U32,
    size: np.uint64,
    weight: int,
    out: U64,
    segment: U16,
    prefix: U64,
    sparse_out: U64,
) -> None:
    """``out[i] = XOR_j source[p_ij]`` over the ``weight`` positions ``p_ij = (u * size) >> 32``
    of the words ``u = stream[i weight + j]`` (rows of 1 to 3 words, XORed in registers), and
    the same from a sparse vector's prefix XOR into ``sparse_out`` unless that is empty
    (:class:`SparseVector`)."""
    rows, width = out.shape
    sparse = len(sparse_out) > 0
    high = np.uint64(32)
    for i in range(rows):
        at = i * weight
        w0 = w1 = w2 = e = np.uint64(0)
        for j in range(weight):
            where = (np.uint64(stream[at + j]) * size) >> high
            w0 ^= source[where, 0]
            if width > 1:
                w1 ^= source[where, 1]
            if width > 2:
                w2 ^= source[where, 2]
            if sparse:
                e ^= prefix[segment[where]]
        out[i, 0] = w0
        if width > 1:
            out[i, 1] = w1
        if width > 2:
            out[i, 2] = w2
        if sparse:
            sparse_out[i] = e


def accumulate(rows: U8) -> None:
    """In place: row ``i`` becomes the XOR of rows ``0 .. i`` (``(N, W)``, ``W % 8 == 0``; a
    compiled pass: numpy's ``bitwise_xor.accumulate`` along the rows took ~2x as long, ~3 ms
    per VOLE instance of 1.1M 16-byte rows)."""
    if not rows.flags.c_contiguous or rows.ndim != 2 or rows.shape[1] % 8:
        raise ValueError("need a C-contiguous (N, W) array, W a multiple of 8")
    _accumulate(rows.view(np.uint64))


@jit.kernel
def _accumulate(words: U64) -> None:
    """:func:`accumulate`'s kernel: the running XOR of each word column, in row order (rows of
    two words, the VOLE receiver's, in registers)."""
    rows, width = words.shape
    if width == 2:
        low = high = np.uint64(0)
        for i in range(rows):
            low ^= words[i, 0]
            high ^= words[i, 1]
            words[i, 0] = low
            words[i, 1] = high
        return
    running = np.zeros(width, dtype=np.uint64)
    for i in range(rows):
        for c in range(width):
            running[c] ^= words[i, c]
            words[i, c] = running[c]
