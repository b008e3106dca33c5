"""Hashing to the prime-order subgroup of Curve25519, for ECDH-PSI and the keyword-PIR OPRF.

Why. Hashing an item straight to a 32-byte X25519 u-coordinate lands on the curve or on its
quadratic twist, one bit per item that scalar multiplication keeps: the peer reads it off every
blinded value (issue 15; ``tests/privacy/test_prime_order_group.py``). Here every hashed point
lies in the subgroup of prime order ``l = 2^252 + 27742317777372353535851937790883648493``, and
so does every multiple of it: the blinded values are uniform in that group, whatever the item.

Construction: RFC 9380 ``hash_to_curve`` with the suite ``curve25519_XMD:SHA-512_ELL2_RO_``
(Sec. 8.5), exactly; :func:`hash_to_u` returns the u-coordinate of its output point ``P``.

1. ``hash_to_field`` (Sec. 5.2): ``expand_message_xmd`` with SHA-512 (Sec. 5.3.1) expands
   ``msg`` under a domain-separation tag to two 48-byte strings, each reduced modulo
   ``p = 2^255 - 19`` (``L = 48``): ``u0, u1``.
2. ``map_to_curve`` on each: Elligator 2 for Curve25519 with ``Z = 2``, the straight-line
   procedure of Appendix G.2.1 (one exponentiation by ``(p - 5) / 8`` gives the square root and
   the division at once), points ``Q0, Q1`` in affine Montgomery coordinates.
3. ``clear_cofactor(Q0 + Q1)``: the affine sum, then three x-only doublings (``h = 8``).

The point is the random-oracle construction of Brier et al. (CRYPTO 2010) and Farashahi et al.
(Math. Comp. 2013) that RFC 9380 specifies: with ``hash_to_field`` a random oracle, ``P`` is
indifferentiable from a random oracle into the subgroup of order ``l``. The tests check every
step against the RFC's vectors (Appendix J.4.1: ``u0, u1, Q0, Q1, P``).

Arithmetic. gmpy2 (GMP) integers: an exponentiation modulo p takes ~10 us of CPU on the
2-core test machine (Python's own ``pow`` ~110 us; an X25519 ~31 us), two per item, and a
batch does all of them in one call that releases the GIL. The sums' divisions share one modular
inversion per batch (Montgomery's trick). All told ~37 us per item, ~20 of them without the GIL;
libsodium's ``crypto_core_ed25519_from_uniform`` twice plus a point addition (the edwards25519
route) took ~65 us. The map branches on whether ``g(x1)`` is a square; like any Python
big-integer code it is not constant-time, so an observer of this process's timing could learn
about the items hashed (a local side channel; the peer sees only the time of a whole batch).

X25519 with a clamped scalar (a multiple of 8) keeps a point of the prime-order subgroup in it,
so ECDH on these u-coordinates is Diffie-Hellman in the group of order ``l`` (modulo the sign of
the point, which u-coordinates do not carry). The map is deterministic and public; it does not
depend on a key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import gmpy2  # type: ignore[import-untyped]

P25519: Final = (1 << 255) - 19
GROUP_ORDER: Final = (1 << 252) + 27742317777372353535851937790883648493
POINT_BYTES: Final = 32

Fe: TypeAlias = Any  # a gmpy2.mpz below p (gmpy2 ships no type information)

_P: Final = gmpy2.mpz(P25519)
_J: Final = 486662  # the Montgomery coefficient A of Curve25519 (RFC 9380's J; K = 1)
_A24: Final = (_J + 2) // 4  # x-only doubling constant
_C2: Final = gmpy2.powmod(2, (P25519 + 3) // 8, _P)  # RFC 9380 G.2.1 constants
_C3: Final = gmpy2.powmod(2, (P25519 - 1) // 4, _P)  # a square root of -1
_C4: Final = (P25519 - 5) // 8
_X1N: Final = _P - _J  # x1 = -J / (1 + 2 u^2)
_J2: Final = _J * _J

_FIELD_BYTES: Final = 48  # RFC 9380 L for p = 2^255 - 19 and k = 128
_SHA512_BLOCK: Final = 128
_SHA512_OUT: Final = 64
_MAX_DST: Final = 255


class _Expander:
    """RFC 9380 ``expand_message_xmd`` with SHA-512 (Sec. 5.3.1) under one tag: the tag's
    constant parts and the hash of the zero block ``Z_pad`` are prepared once per batch."""

    def __init__(self, dst: bytes) -> None:
        if not 0 < len(dst) <= _MAX_DST:
            raise ValueError(f"the domain-separation tag must be 1 to {_MAX_DST} bytes")
        self._dst_prime = dst + bytes([len(dst)])
        self._padded = hashlib.sha512(bytes(_SHA512_BLOCK))

    def expand(self, msg: bytes, length: int) -> bytes:
        blocks = -(-length // _SHA512_OUT)
        if blocks > 255 or length > 65535:
            raise ValueError(f"cannot expand to {length} bytes")
        state = self._padded.copy()
        state.update(msg + length.to_bytes(2, "big") + b"\x00" + self._dst_prime)
        b0 = state.digest()
        previous = hashlib.sha512(b0 + b"\x01" + self._dst_prime).digest()
        out = [previous]
        for index in range(2, blocks + 1):
            mixed = int.from_bytes(b0, "big") ^ int.from_bytes(previous, "big")
            previous = hashlib.sha512(
                mixed.to_bytes(_SHA512_OUT, "big") + bytes([index]) + self._dst_prime
            ).digest()
            out.append(previous)
        return b"".join(out)[:length]

    def field_pair(self, msg: bytes) -> tuple[Fe, Fe]:
        """``hash_to_field(msg, count=2)`` (Sec. 5.2): two 48-byte strings reduced modulo p."""
        expanded = self.expand(msg, 2 * _FIELD_BYTES)
        u0 = gmpy2.mpz(int.from_bytes(expanded[:_FIELD_BYTES], "big")) % _P
        return u0, gmpy2.mpz(int.from_bytes(expanded[_FIELD_BYTES:], "big")) % _P


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 ``expand_message_xmd`` with SHA-512."""
    return _Expander(dst).expand(msg, length)


def hash_to_field(msg: bytes, dst: bytes) -> tuple[int, int]:
    """Two field elements ``u0, u1``: RFC 9380 ``hash_to_field`` with count 2."""
    u0, u1 = _Expander(dst).field_pair(msg)
    return int(u0), int(u1)


class _Elligator2:
    """RFC 9380 ``map_to_curve_elligator2_curve25519`` (Appendix G.2.1) of one field element
    ``u``, split around its exponentiation so that a batch can do all of those at once."""

    __slots__ = ("gx1", "gxd", "tv1", "tv3", "u", "xd")

    def __init__(self, u: Fe) -> None:
        p = _P
        self.u = u
        self.tv1 = tv1 = 2 * u * u % p
        self.xd = xd = tv1 + 1  # nonzero: -1 is a square modulo p, 2 u^2 is not (or zero)
        tv2 = xd * xd % p
        self.gxd = gxd = tv2 * xd % p  # xd^3
        self.gx1 = gx1 = (tv2 - _J2 * tv1) * _X1N % p  # x1n^3 + J x1n^2 xd + x1n xd^2
        self.tv3 = gxd * gxd * gxd * gx1 % p  # gx1 gxd^3

    def base(self) -> Fe:
        """What the exponentiation by ``(p - 5) / 8`` takes: ``gx1 gxd^7``."""
        return self.tv3 * self.gxd * self.gxd * self.gxd * self.gxd % _P

    def point(self, power: Fe) -> tuple[Fe, Fe, Fe]:
        """The mapped point ``(xn / xd, y)`` as ``(xn, xd, y)``, given ``base() ^ c4``."""
        p, gxd, gx1 = _P, self.gxd, self.gx1
        y = power * self.tv3 % p
        check = y * y * gxd % p
        if check == gx1:  # g(x1) is a square: x = x1, y of odd sign
            xn, odd = _X1N, 1
        elif check == p - gx1:
            y, xn, odd = y * _C3 % p, _X1N, 1
        else:  # g(x2) = 2 u^2 g(x1) is the square: x = x2 = 2 u^2 x1, y of even sign
            y = y * self.u * _C2 % p
            if y * y * gxd % p != gx1 * self.tv1 % p:
                y = y * _C3 % p
            xn, odd = _X1N * self.tv1 % p, 0
        if y & 1 != odd:
            y = (p - y) % p
        return xn, self.xd, y


def map_to_curve(u: int) -> tuple[int, int, int]:
    """RFC 9380 ``map_to_curve_elligator2_curve25519``: the point ``(xn / xd, y)`` of
    Curve25519, as ``(xn, xd, y)``."""
    mapped = _Elligator2(gmpy2.mpz(u))
    xn, xd, y = mapped.point(gmpy2.powmod(mapped.base(), _C4, _P))
    return int(xn), int(xd), int(y)


def _sum_times_8(q0: tuple[Fe, Fe, Fe], q1: tuple[Fe, Fe, Fe]) -> tuple[Fe, Fe]:
    """``8 (Q0 + Q1)`` as projective ``(X : Z)``; ``Z = 0`` is the identity."""
    p = _P
    n0, d0, y0 = q0
    n1, d1, y1 = q1
    cross0, cross1 = n0 * d1 % p, n1 * d0 % p
    doublings = 3
    if cross0 == cross1:  # x0 = x1: Q0 = Q1 (double it) or Q0 = -Q1 (the sum is the identity)
        x, z = (n0, d0) if y0 == y1 and y0 != 0 else (1, 0)
        doublings = 4
    else:  # x3 = ((y1 - y0) / (x1 - x0))^2 - J - x0 - x1 over the denominator e (x1 - x0)^2
        e = d0 * d1 % p
        dx = (cross1 - cross0) % p
        dx2 = dx * dx % p
        dy = (y1 - y0) % p
        x = (dy * dy % p * (e * e % p) % p * e - (_J * e + cross0 + cross1) % p * dx2) % p
        z = e * dx2 % p
    for _ in range(doublings):  # x-only doubling on the Montgomery curve
        plus, minus = (x + z) % p, (x - z) % p
        plus, minus = plus * plus % p, minus * minus % p
        diff = (plus - minus) % p  # 4 x z
        x, z = plus * minus % p, diff * ((minus + _A24 * diff) % p) % p
    return x, z


def hash_to_u(items: Sequence[bytes], dst: bytes) -> list[bytes]:
    """Every item hashed to the prime-order subgroup (RFC 9380, ``curve25519_XMD:SHA-512_ELL2_RO_``
    under the tag ``dst``), as 32-byte X25519 u-coordinates. An item that hashes to the identity
    is refused with ValueError (probability about 2^-252 per item).

    The exponentiations of the whole batch run in one gmpy2 call that releases the GIL, so
    threads hashing batches side by side share the cores for most of the work."""
    expander = _Expander(dst)
    maps = [_Elligator2(u) for item in items for u in expander.field_pair(item)]
    powers = gmpy2.powmod_base_list([m.base() for m in maps], _C4, _P)
    xs: list[Fe] = []
    zs: list[Fe] = []
    for k in range(0, len(maps), 2):
        x, z = _sum_times_8(maps[k].point(powers[k]), maps[k + 1].point(powers[k + 1]))
        if z == 0:
            raise ValueError("an item hashes to the identity point")
        xs.append(x)
        zs.append(z)
    return [int(u).to_bytes(POINT_BYTES, "little") for u in _divide(xs, zs)]


def _divide(numerators: list[Fe], denominators: list[Fe]) -> list[Fe]:
    """``n / d`` for each pair, with one modular inversion for all (Montgomery's trick)."""
    p = _P
    prefix = [gmpy2.mpz(1)]
    for d in denominators:
        prefix.append(prefix[-1] * d % p)
    inverse = gmpy2.invert(prefix[-1], p)
    out: list[Fe] = [0] * len(denominators)
    for k in range(len(denominators) - 1, -1, -1):
        out[k] = numerators[k] * (inverse * prefix[k] % p) % p
        inverse = inverse * denominators[k] % p
    return out
