"""Hashing to the prime-order subgroup of Curve25519, for ECDH-PSI and the keyword-PIR OPRF.

Why. Hashing an item straight to a 32-byte X25519 u-coordinate lands on the curve or on its
quadratic twist, one bit per item that scalar multiplication keeps: the peer reads it off every
blinded value (issue 15; ``tests/privacy/test_prime_order_group.py``). Here every hashed point
lies in the subgroup of prime order ``l = 2^252 + 27742317777372353535851937790883648493``, and
so does every multiple of it: the blinded values are uniform in that group, whatever the item.

Construction -- the random-oracle structure of RFC 9380 ``hash_to_curve`` for edwards25519
(suite ``edwards25519_XMD:SHA-512_ELL2_RO_``) built from maintained primitives:

1. ``hash_to_field``: ``expand_message_xmd`` with SHA-512 (RFC 9380, Sec. 5.3.1) expands
   ``msg`` under a domain-separation tag to two 48-byte strings, each reduced modulo
   ``p = 2^255 - 19`` (``L = 48``); checked against the RFC's vectors. Two sign bits come from
   ``SHA-512(len(tag) || tag || "/sign" || msg)``.
2. Each field element goes through libsodium's Elligator 2 map with cofactor clearing
   (``crypto_core_ed25519_from_uniform``; PyNaCl). That is RFC 9380's
   ``map_to_curve_elligator2_edwards25519`` followed by ``clear_cofactor``, except that
   libsodium lets the caller pick the sign of ``x`` (the tests check ``8 Q0`` and ``8 Q1`` of
   the RFC's vectors up to that sign); the sign comes from the hashed sign bit, so each map is
   the RFC's map composed with a uniformly random sign flip.
3. The two points are added (``crypto_core_ed25519_add``), as in the RFC's random-oracle
   construction: the sum is statistically close to uniform in the prime-order subgroup.

The result is returned both as the edwards25519 encoding and as the Montgomery u-coordinate
``u = (1 + y) / (1 - y)`` (RFC 7748, Sec. 4.1), the input of X25519. X25519 with a clamped
scalar (a multiple of 8) keeps a point of the prime-order subgroup in it, so ECDH on these
u-coordinates is Diffie-Hellman in the group of order ``l`` (modulo the sign of the point, which
u-coordinates do not carry). The map is deterministic and public; it does not depend on a key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from nacl.bindings import crypto_core_ed25519_add, crypto_core_ed25519_from_uniform

P25519: Final = (1 << 255) - 19
GROUP_ORDER: Final = (1 << 252) + 27742317777372353535851937790883648493
POINT_BYTES: Final = 32

_FIELD_BYTES: Final = 48  # RFC 9380 L for p = 2^255 - 19 and k = 128
_SIGN_TAG: Final = b"/sign"
_SHA512_BLOCK: Final = 128
_SHA512_OUT: Final = 64
_MAX_DST: Final = 250  # room for the sign tag


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 ``expand_message_xmd`` with SHA-512."""
    if not 0 < len(dst) <= _MAX_DST:
        raise ValueError(f"the domain-separation tag must be 1 to {_MAX_DST} bytes")
    blocks = -(-length // _SHA512_OUT)
    if blocks > 255 or length > 65535:
        raise ValueError(f"cannot expand to {length} bytes")
    dst_prime = dst + bytes([len(dst)])
    b0 = hashlib.sha512(
        bytes(_SHA512_BLOCK) + msg + length.to_bytes(2, "big") + b"\x00" + dst_prime
    ).digest()
    previous = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    out = [previous]
    for index in range(2, blocks + 1):
        mixed = (int.from_bytes(b0, "big") ^ int.from_bytes(previous, "big")).to_bytes(64, "big")
        previous = hashlib.sha512(mixed + bytes([index]) + dst_prime).digest()
        out.append(previous)
    return b"".join(out)[:length]


def hash_to_field(msg: bytes, dst: bytes) -> tuple[int, int]:
    """Two field elements ``u0, u1``: RFC 9380 ``hash_to_field`` with count 2."""
    expanded = expand_message_xmd(msg, dst, 2 * _FIELD_BYTES)
    u0 = int.from_bytes(expanded[:_FIELD_BYTES], "big") % P25519
    return u0, int.from_bytes(expanded[_FIELD_BYTES:], "big") % P25519


def _sign_bits(msg: bytes, dst: bytes) -> tuple[int, int]:
    """Two hashed bits for the signs libsodium's map leaves to the caller (own tag)."""
    first = hashlib.sha512(len(dst).to_bytes(1, "big") + dst + _SIGN_TAG + msg).digest()[0]
    return first & 1, (first >> 1) & 1


def map_to_group(u: int, sign: int) -> bytes:
    """libsodium's Elligator 2 map of the field element ``u``, cofactor cleared, with the sign of
    ``x`` before clearing set to ``sign`` (edwards25519 encoding)."""
    return crypto_core_ed25519_from_uniform((u | (sign << 255)).to_bytes(32, "little"))


def hash_to_group(msg: bytes, dst: bytes) -> bytes:
    """``msg`` hashed to the prime-order subgroup of edwards25519 (32-byte encoding)."""
    u0, u1 = hash_to_field(msg, dst)
    sign0, sign1 = _sign_bits(msg, dst)
    return crypto_core_ed25519_add(map_to_group(u0, sign0), map_to_group(u1, sign1))


def montgomery_u(points: Sequence[bytes]) -> list[bytes]:
    """The X25519 u-coordinates ``(1 + y) / (1 - y)`` of edwards25519 encodings, with one
    modular inversion for the whole batch (Montgomery's trick). The identity (``y = 1``) has no
    u-coordinate and is refused; a hash reaches it with probability about 2^-252."""
    ys = [int.from_bytes(point, "little") & ((1 << 255) - 1) for point in points]
    denominators = [(1 - y) % P25519 for y in ys]
    if any(d == 0 for d in denominators):
        raise ValueError("the identity point has no u-coordinate")
    prefix = [1] * (len(ys) + 1)
    for k, d in enumerate(denominators):
        prefix[k + 1] = prefix[k] * d % P25519
    inverse = pow(prefix[-1], -1, P25519) if ys else 1
    out: list[bytes] = [b""] * len(ys)
    for k in range(len(ys) - 1, -1, -1):
        inv_k = inverse * prefix[k] % P25519
        inverse = inverse * denominators[k] % P25519
        out[k] = ((1 + ys[k]) * inv_k % P25519).to_bytes(32, "little")
    return out


def hash_to_u(items: Sequence[bytes], dst: bytes) -> list[bytes]:
    """Every item hashed to the prime-order subgroup, as X25519 u-coordinates."""
    return montgomery_u([hash_to_group(item, dst) for item in items])
