"""The ring Z_2^64, fixed-point encoding and randomness of the secret-sharing engine
(:mod:`privledger.protocols.mpc.sharing`).

Values live in the ring Z_2^64 as ``numpy.uint64`` arrays; numpy's wrap-around on ``uint64``
*arrays* is the ring arithmetic (scalars are avoided: numpy warns on scalar overflow). A secret
``x`` is split among the parties of a group as ``x = sum(x_i) mod 2^64`` (*arithmetic* shares)
or, for bit-level work, as ``x = xor(x_i)`` over packed 64-bit words (*XOR* shares).

Fixed point. A real ``v`` is encoded as the two's complement of ``round(v * 2^f)`` with ``f``
fractional bits (default :data:`DEFAULT_FRAC_BITS` = 16, i.e. a resolution of 2^-16 ~ 1.5e-5).
The range is ``|v| < 2^(63-f)`` (~1.4e14 for f = 16); encoding is exact to 2^-(f+1) while
``|v| < 2^(52-f)`` (float64 has a 53-bit mantissa). A product of two encodings carries 2f
fractional bits and must be truncated (:func:`truncate`) and stay below 2^63 before that.

Randomness. Masks come from :mod:`secrets`; vectors longer than 64 words are expanded from a
fresh 32-byte :mod:`secrets` seed with AES-256-CTR (``cryptography``), a standard PRG that is
~100x faster than drawing every word from the OS.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

U64 = npt.NDArray[np.uint64]

RING_BITS: Final = 64
DEFAULT_FRAC_BITS: Final = 16
SEED_BYTES: Final = 32

_MASK64: Final = (1 << 64) - 1
_SMALL: Final = 64  # vectors up to this many words come straight from secrets


def const(value: int) -> np.uint64:
    """``value mod 2^64`` as a ``numpy.uint64`` (negative values wrap, two's complement)."""
    return np.uint64(value & _MASK64)


def words(values: npt.ArrayLike) -> U64:
    """Integers (``-2^63 <= v < 2^64``, negatives wrap) as ring elements; no non-integers."""
    if isinstance(values, list | tuple):  # Python ints: numpy might turn 2^64 - 1 into a float
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.asarray(values)
    if array.dtype == np.uint64:
        return np.ascontiguousarray(array, dtype=np.uint64).reshape(-1)
    if array.dtype.kind in "iub":
        return np.ascontiguousarray(array.astype(np.int64).view(np.uint64)).reshape(-1)
    flat = array.reshape(-1).tolist()
    if array.dtype.kind != "O" or not all(isinstance(v, int | np.integer) for v in flat):
        raise ValueError(f"ring elements must be integers, got {array.dtype}")
    if any(isinstance(v, bool) or not -(1 << 63) <= int(v) < (1 << 64) for v in flat):
        raise ValueError("ring elements must be integers in -2^63 .. 2^64 - 1")
    return np.asarray([int(v) & _MASK64 for v in flat], dtype=np.uint64)


def to_signed(values: U64) -> npt.NDArray[np.int64]:
    """Ring elements read as two's complement integers in ``[-2^63, 2^63)``."""
    return values.view(np.int64)


def encode_fixed(values: npt.ArrayLike, frac_bits: int = DEFAULT_FRAC_BITS) -> U64:
    """Encode reals as ``round(v * 2^f) mod 2^64``; refuse NaN, inf and ``|v| >= 2^(63-f)``."""
    _check_frac_bits(frac_bits)
    real = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(real)):
        raise ValueError("fixed-point encoding needs finite values")
    scaled = np.rint(real * float(1 << frac_bits))
    if scaled.size and float(np.max(np.abs(scaled))) >= 2.0**63:
        raise ValueError(f"value out of the fixed-point range |v| < 2^{63 - frac_bits}")
    return scaled.astype(np.int64).view(np.uint64)


def decode_fixed(values: U64, frac_bits: int = DEFAULT_FRAC_BITS) -> npt.NDArray[np.float64]:
    """Inverse of :func:`encode_fixed` (to float64)."""
    _check_frac_bits(frac_bits)
    return to_signed(values).astype(np.float64) / float(1 << frac_bits)


def _check_frac_bits(frac_bits: int) -> None:
    if not 0 <= frac_bits <= 40:
        raise ValueError(f"frac_bits must be in 0..40, not {frac_bits}")


def prg_words(seed: bytes, nonce: bytes, count: int) -> U64:
    """``count`` pseudorandom words: AES-256-CTR keystream under ``seed`` from ``nonce``."""
    if len(seed) != SEED_BYTES or len(nonce) != 16:
        raise ValueError("prg_words needs a 32-byte seed and a 16-byte nonce")
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    return np.frombuffer(encryptor.update(bytes(8 * count)), dtype="<u8").astype(
        np.uint64, copy=False
    )


def random_words(count: int) -> U64:
    """Uniform ring elements: from :mod:`secrets`, AES-CTR-expanded from a secret seed if long."""
    if count <= _SMALL:
        return np.frombuffer(secrets.token_bytes(8 * count), dtype="<u8").astype(
            np.uint64, copy=False
        )
    return prg_words(secrets.token_bytes(SEED_BYTES), bytes(16), count)


def split(secret: U64, parties: int) -> list[U64]:
    """Additive shares of ``secret`` for ``parties`` parties (the last one is the correction)."""
    if parties < 1:
        raise ValueError("need at least one party")
    shares = [random_words(secret.size) for _ in range(parties - 1)]
    last = secret.copy()
    for share in shares:
        last -= share
    return [*shares, last]


def reconstruct(shares: Sequence[U64]) -> U64:
    """Sum of additive shares mod 2^64."""
    total = np.zeros_like(shares[0])
    for share in shares:
        total += share
    return total
