"""GF(2^128) arithmetic for VOLE and RR22-PSI on numpy arrays.

Representation: an element is 16 bytes, read as a little-endian 128-bit integer whose bit ``i``
is the coefficient of ``X^i``, modulo ``X^128 + X^7 + X^2 + X + 1`` (the GCM polynomial, in
the plain -- not bit-reflected -- bit order). Arrays of elements are ``(n, 16)`` ``uint8`` or,
viewed as little-endian words, ``(n, 2)`` ``uint64``. Addition is XOR.

Only two products are needed at scale, both by a value known in advance:

- :func:`combine_x_powers`: ``sum_k X^k v_k`` over 64 elements ``v_0 .. v_63`` (shifts, and the
  overflow folded back once with ``X^7 + X^2 + X + 1``), in a compiled kernel; the base VOLE of
  :mod:`.vole` combines 64 bit-correlations per noise value with it. (In numpy, 64 shifted
  copies per call cost each party ~0.03 s of interpreter overhead at 2^20, for ~8K values.)
- :class:`FixedMultiplier`: ``delta * z`` for a fixed ``delta`` and many ``z`` by table lookup.
  ``z`` is split into bytes; table ``b`` holds ``delta * v * X^(8 b)`` for the 256 byte values
  ``v``, so a product is the XOR of one 16-byte row per byte of ``z``, in a compiled kernel
  (:mod:`.jit`). The 8 tables of a 64-bit operand take 32 KiB and stay in cache. (Measured on
  this machine at 2^20 operands: ~9 ms, ~20 ms in numpy, where 16-bit tables -- half the lookups,
  4 MiB of tables -- are no faster; see benchmarks/vole_kernels.py.)

:func:`mul` is the schoolbook reference (Python integers), used to build the tables and by tests.
No secret-dependent branches beyond table indices: like every code path here it makes no
claim to constant time (the semi-honest parties run on their own machines).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from privledger.protocols.psi import jit

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]

BYTES = 16
_MASK128 = (1 << 128) - 1
_REDUCTION = 0x87  # X^7 + X^2 + X + 1


def to_int(element: bytes | U8) -> int:
    """The 128-bit integer of a 16-byte element."""
    data = element if isinstance(element, bytes) else bytes(np.asarray(element, dtype=np.uint8))
    if len(data) != BYTES:
        raise ValueError("a GF(2^128) element is 16 bytes")
    return int.from_bytes(data, "little")


def from_int(value: int) -> bytes:
    """The 16 bytes of a 128-bit integer."""
    return (value & _MASK128).to_bytes(BYTES, "little")


def mul(a: int, b: int) -> int:
    """``a * b`` in GF(2^128) by carry-less schoolbook multiplication and reduction."""
    if not (0 <= a <= _MASK128 and 0 <= b <= _MASK128):
        raise ValueError("GF(2^128) operands are 128-bit integers")
    product = 0
    while b:
        low = b & -b
        product ^= a << (low.bit_length() - 1)
        b ^= low
    for bit in range(product.bit_length() - 1, 127, -1):
        if product >> bit & 1:
            product ^= (1 << bit) ^ (_REDUCTION << (bit - 128))
    return product


def words(elements: U8) -> U64:
    """``(n, 16)`` bytes as ``(n, 2)`` little-endian words (a view when contiguous)."""
    view: U64 = np.ascontiguousarray(elements).view("<u8").reshape(len(elements), 2)
    return view


def combine_x_powers(values: U64) -> U64:
    """``sum_k X^k v_k`` for each ``(64, 2)``-word group of elements ``v_0 .. v_63``:
    ``(n, 64, 2)`` -> ``(n, 2)``."""
    if values.ndim != 3 or values.shape[1:] != (64, 2):
        raise ValueError("need (n, 64, 2) words")
    out = np.empty((len(values), 2), dtype=np.uint64)
    _combine_x_powers(np.ascontiguousarray(values, dtype=np.uint64), out)
    return out


@jit.kernel
def _combine_x_powers(values: U64, out: U64) -> None:
    """:func:`combine_x_powers`'s kernel: the 192-bit sum of the shifted elements, then its
    top word (the coefficients of ``X^128`` up, fewer than 63 bits) times ``X^7 + X^2 + X + 1``
    added to the low 128 bits (at most 70 bits: no second fold)."""
    one, two, seven = np.uint64(1), np.uint64(2), np.uint64(7)
    for i in range(len(values)):
        low, high, top = values[i, 0, 0], values[i, 0, 1], np.uint64(0)
        for k in range(1, 64):
            shift, back = np.uint64(k), np.uint64(64 - k)
            v0, v1 = values[i, k, 0], values[i, k, 1]
            low ^= v0 << shift
            high ^= (v1 << shift) | (v0 >> back)
            top ^= v1 >> back
        low ^= top ^ (top << one) ^ (top << two) ^ (top << seven)
        high ^= (top >> np.uint64(63)) ^ (top >> np.uint64(62)) ^ (top >> np.uint64(57))
        out[i, 0] = low
        out[i, 1] = high


class FixedMultiplier:
    """``delta * z`` for a fixed element ``delta`` and operands ``z`` of ``width`` bytes
    (``width <= 16``; the low ``8 width`` coefficients), by byte-table lookups."""

    def __init__(self, delta: bytes, width: int = BYTES) -> None:
        if len(delta) != BYTES:
            raise ValueError("delta is a 16-byte element")
        if not 1 <= width <= BYTES:
            raise ValueError("operand width must be 1..16 bytes")
        self.width = width
        d = to_int(delta)
        # tables[b, v] = delta * v * X^(8 b): built from the 8 single-bit rows by XOR doubling
        tables = np.zeros((width, 256, 2), dtype=np.uint64)
        for b in range(width):
            for j in range(8):
                row = mul(d, 1 << (8 * b + j))
                tables[b, 1 << j] = (row & (2**64 - 1), row >> 64)
            for v in range(1, 256):
                low = v & -v
                if v != low:
                    tables[b, v] = tables[b, v ^ low] ^ tables[b, low]
        self._tables = tables

    @property
    def tables(self) -> U64:
        """``(width, 256, 2)`` words: row ``[b, v]`` is ``delta v X^(8 b)``."""
        return self._tables

    def __call__(self, operands: U8) -> U8:
        """``(n, width)`` operands -> ``(n, 16)`` products."""
        if operands.ndim != 2 or operands.shape[1] != self.width:
            raise ValueError(f"need (n, {self.width}) operands")
        out = np.empty((len(operands), 2), dtype=np.uint64)
        _table_products(self._tables, np.ascontiguousarray(operands), out)
        return out.view(np.uint8).reshape(len(operands), BYTES)


@jit.kernel
def _table_products(tables: U64, operands: U8, out: U64) -> None:
    """:class:`FixedMultiplier`'s kernel: per operand, the XOR of one table row per byte."""
    count, width = operands.shape
    for i in range(count):
        low = high = np.uint64(0)
        for b in range(width):
            low ^= tables[b, operands[i, b], 0]
            high ^= tables[b, operands[i, b], 1]
        out[i, 0] = low
        out[i, 1] = high
