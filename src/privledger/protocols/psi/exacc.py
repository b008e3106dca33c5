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

Entries are rows of ``W`` bytes (``W`` a multiple of 8): XOR is done on 64-bit words; several
vectors (e.g. both halves of a correlation, of different widths) are encoded in one pass that
draws the expander positions once (:meth:`ExAccCode.dual_encode_into`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

SEED_BYTES = 16
CHUNK_ROWS = 1 << 15  # outputs per expander batch: indices and temporaries stay in cache


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
        count = (hi - lo) * self.weight
        start = lo * self.weight * 4  # byte offset into the keystream, 4 bytes per position
        skip = start % 16
        iv = (start // 16).to_bytes(16, "big")
        encryptor = Cipher(algorithms.AES(self.seed), modes.CTR(iv)).encryptor()
        stream = encryptor.update(bytes(skip + 4 * count))[skip:]
        raw = np.frombuffer(stream, dtype="<u4").astype(np.uint64)
        raw *= np.uint64(self.code_size)
        raw >>= np.uint64(32)
        return raw.astype(np.int64).reshape(hi - lo, self.weight)

    def dual_encode(self, noisy: U8) -> U8:
        """``B A e`` for ``e`` = ``noisy`` (``(N, W)`` bytes, consumed: it holds the prefix
        XOR afterwards): ``(k, W)``."""
        out = np.empty((self.message_size, noisy.shape[1] if noisy.ndim == 2 else 0), np.uint8)
        self.dual_encode_into((noisy, out))
        return out

    def dual_encode_into(self, *pairs: tuple[U8, U8]) -> None:
        """:meth:`dual_encode` of several vectors at once, each ``(noisy (N, W), out (k, W))``
        (``W`` may differ; ``noisy`` is consumed; ``out`` is overwritten and may be a column
        range of a wider array, e.g. the first 16 bytes of 24-byte rows): the expander positions
        are drawn once for all, and each output is written in place."""
        sources: list[U64] = []
        outs: list[U64] = []
        for noisy, out in pairs:
            if noisy.ndim != 2 or noisy.shape[0] != self.code_size or noisy.shape[1] % 8:
                raise ValueError(f"need ({self.code_size}, 8 j) bytes")
            if out.shape != (self.message_size, noisy.shape[1]) or out.strides[1] != 1:
                raise ValueError("need a (k, W) output of contiguous rows")
            accumulate(noisy)
            sources.append(noisy.view(np.uint64))
            outs.append(out.view(np.uint64))
        for lo in range(0, self.message_size, CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, self.message_size)
            columns = np.ascontiguousarray(self.positions(lo, hi).T)
            for source, words in zip(sources, outs, strict=True):
                block = words[lo:hi]
                # gathers into a strided output are ~1.6x slower: through a cached batch
                batch = block if block.flags.c_contiguous else np.empty_like(block, order="C")
                source.take(columns[0], axis=0, out=batch)
                for where in columns[1:]:  # word-row gathers: faster than void-row ones
                    batch ^= source.take(where, axis=0)
                if batch is not block:
                    block[...] = batch


def accumulate(rows: U8) -> None:
    """In place: row ``i`` becomes the XOR of rows ``0 .. i`` (``(N, W)``, ``W % 8 == 0``)."""
    if not rows.flags.c_contiguous:
        raise ValueError("need a C-contiguous array")
    as_words = rows.view(np.uint64)
    np.bitwise_xor.accumulate(as_words, axis=0, out=as_words)
