"""Secure comparison and zero tests on additive shares over Z_2^64 (dealer-assisted).

Sign bit (:func:`is_negative`). For arithmetic shares of ``a`` (read as two's complement, so
``|a| < 2^63``) the group opens ``m = a + r`` for a dealer *edaBit* ``r`` -- uniform in Z_2^64
and also XOR-shared bit by bit (Escudero et al., CRYPTO 2020) -- and computes

    msb(a) = m_63 ^ r_63 ^ [r mod 2^63 > m mod 2^63]

(the last term is the borrow out of the low 63 bits of ``m - r``). The comparison of the public
``m`` with the bit-shared ``r`` is the classic bitwise circuit: with ``e_j = not(r_j ^ m_j)``
and ``g_j = r_j & not m_j`` (both local, ``m`` is public), ``r > m`` is the XOR over ``j`` of
``g_j & AND_{t > j} e_t``; the suffix ANDs are a Kogge-Stone prefix over the 64 bits of one word
(6 rounds of Beaver AND triples on packed words) and one more AND round combines them. This is
the masked-reveal-plus-bitwise-comparison approach of Damgård et al. (TCC 2006) and of Rabbit
(Makri et al., 2021) in the dealer model: 8 rounds, 7 AND triples and one edaBit per element.

Zero test (:func:`all_ones`, used for equality). ``x == y`` iff every bit of ``not(x ^ y)`` is
one; the 64 bits are ANDed as a tree of 6 rounds, packing the surviving lanes of two words into
one after each round so the whole tree costs about one AND triple per element.

Results are XOR-shared bits (bit 0 of each word). :func:`reveal_bits` opens them to one party;
:func:`sharing.bits_to_arith` turns them into arithmetic shares (e.g. to gate a value).

Security model: semi-honest parties and the trusted dealer of :mod:`.sharing`. Every opened
value (``m``, and ``d``, ``e`` in each AND) is masked by fresh uniform dealer randomness, so the
transcript is independent of the inputs: the protocol leaks nothing; the output is only the
shared bit, revealed to whom the caller decides. Correctness needs ``|x - c| < 2^63``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from privledger.protocols.mpc.correlations import Group
from privledger.protocols.mpc.ring import U64, const, words
from privledger.protocols.mpc.sharing import Party, and_words, open_all, open_to, xor_constant

_ONES: Final = (1 << 64) - 1
_TOP_BIT: Final = 1 << 63


def is_negative(party: Party, group: Group, x: U64) -> U64:
    """XOR-shared bits ``[x < 0]`` (two's complement sign) for arithmetic shares ``x``."""
    r_arith, r_bits = party.correlation("edabit", group, x.size)
    m = open_all(party, group, x + r_arith)
    low = m & const(_TOP_BIT - 1)
    borrow = _public_less_than_shared(party, group, low, r_bits & const(_TOP_BIT - 1))
    sign = ((r_bits >> const(63)) ^ borrow) & const(1)
    return xor_constant(party, group, sign, m >> const(63))


def greater_equal(
    party: Party, group: Group, x: U64, threshold: npt.ArrayLike | None, *, holder: int
) -> U64:
    """XOR-shared bits ``[x >= threshold]``; ``threshold`` (ring units) is known to ``holder``.

    The holder subtracts the threshold from its own share, so it stays private to the holder
    (pass ``holder=group[0]`` and the same value everywhere for a public threshold). Other
    parties pass ``None`` (or the public value; it is ignored).
    """
    if holder not in group:
        raise ValueError(f"holder {holder} is not in the group {group}")
    shifted = x
    if party.index == holder:
        if threshold is None:
            raise ValueError("the holder must pass the threshold")
        limit = np.broadcast_to(words(threshold), x.shape)
        shifted = x - limit
    return xor_constant(party, group, is_negative(party, group, shifted), const(1))


def greater_than(
    party: Party, group: Group, x: U64, threshold: npt.ArrayLike | None, *, holder: int
) -> U64:
    """XOR-shared bits ``[x > threshold]`` (``x >= threshold + 1`` in ring units)."""
    plus_one = None if threshold is None else words(threshold) + const(1)
    return greater_equal(party, group, x, plus_one, holder=holder)


def reveal_bits(party: Party, group: Group, bits: U64, target: int) -> npt.NDArray[np.bool_] | None:
    """Open XOR-shared bits to ``target`` only (others get ``None``)."""
    opened = open_to(party, group, bits & const(1), target, xor=True)
    return None if opened is None else opened.astype(np.bool_)


def equal_shared_xor(party: Party, group: Group, x: U64) -> U64:
    """XOR-shared bits ``[x == 0]`` for XOR-shared words ``x`` (e.g. ``x = key ^ query``)."""
    return all_ones(party, group, xor_constant(party, group, x, const(_ONES)))


def all_ones(party: Party, group: Group, x: U64) -> U64:
    """XOR-shared bits ``[x == 2^64 - 1]`` for XOR-shared words ``x``: a packed AND tree."""
    count = x.size
    padded = -(-max(count, 1) // 64) * 64
    pad = np.zeros(padded - count, dtype=np.uint64)
    state = np.concatenate([x, xor_constant(party, group, pad, const(_ONES))])
    # origin[k, t]: which element sits in lane t of word k
    origin = np.arange(padded, dtype=np.int64).reshape(padded, 1)
    width = 32
    while width >= 1:
        mask = const(_lane_mask(width))
        even, odd = state[0::2], state[1::2]
        low = (even & mask) | ((odd & mask) << const(width))
        high = ((even >> const(width)) & mask) | (((odd >> const(width)) & mask) << const(width))
        state = and_words(party, group, low, high)
        half, lanes = origin.shape[0] // 2, origin.shape[1]
        origin = origin.reshape(half, 2, lanes).transpose(0, 2, 1).reshape(half, 2 * lanes)
        width //= 2
    bits = (state[:, None] >> np.arange(64, dtype=np.uint64)) & const(1)
    out = np.empty(padded, dtype=np.uint64)
    out[origin.reshape(-1)] = bits.reshape(-1)
    return out[:count]


def _lane_mask(width: int) -> int:
    """Low ``width`` bits of every ``2 * width``-bit lane of a 64-bit word."""
    lane = (1 << width) - 1
    return sum(lane << (2 * width * j) for j in range(64 // (2 * width)))


def _public_less_than_shared(party: Party, group: Group, m: U64, r_bits: U64) -> U64:
    """XOR-shared bits ``[m < r]`` for public ``m`` and XOR-shared bits of ``r`` (63 bits)."""
    not_m = m ^ const(_ONES)
    greater = r_bits & not_m  # g_j = r_j and not m_j: linear, m is public
    equal = xor_constant(party, group, r_bits, not_m | const(_TOP_BIT))  # e_j; bit 63 forced 1
    suffix = equal  # suffix[j] = AND of equal[t] for t >= j
    shift = 1
    while shift < 64:
        top = const(_ONES ^ ((1 << (64 - shift)) - 1))
        suffix = and_words(
            party, group, suffix, xor_constant(party, group, suffix >> const(shift), top)
        )
        shift *= 2
    above = xor_constant(party, group, suffix >> const(1), const(_TOP_BIT))  # AND_{t > j} e_t
    terms = and_words(party, group, greater, above)
    return _parity(terms)


def _parity(x: U64) -> U64:
    """Bitwise XOR of the 64 bits of each word (linear, so it works on XOR shares)."""
    folded = x.copy()
    for shift in (32, 16, 8, 4, 2, 1):
        folded ^= folded >> const(shift)
    return folded & const(1)


__all__ = [
    "all_ones",
    "equal_shared_xor",
    "greater_equal",
    "greater_than",
    "is_negative",
    "reveal_bits",
]
