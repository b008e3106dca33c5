"""An independent check that an X25519 u-coordinate lies in the prime-order subgroup: libsodium
validates the matching edwards25519 point (on the curve, canonical, not of small order, order
``l``), through the birational map ``y = (u - 1) / (u + 1)`` (RFC 7748, Sec. 4.1)."""

from __future__ import annotations

from nacl.bindings import crypto_core_ed25519_is_valid_point

P = (1 << 255) - 19


def in_prime_order_subgroup(u: bytes) -> bool:
    x = int.from_bytes(u, "little")
    if x >= P or (x + 1) % P == 0:
        return False
    y = (x - 1) * pow(x + 1, -1, P) % P
    return bool(crypto_core_ed25519_is_valid_point(y.to_bytes(32, "little")))
