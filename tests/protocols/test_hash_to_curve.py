"""Known-answer tests for :mod:`privledger.protocols.hash_to_curve` (RFC 9380 vectors)."""

from __future__ import annotations

import secrets

import pytest
from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_is_valid_point,
    crypto_sign_ed25519_pk_to_curve25519,
)

from privledger.protocols.hash_to_curve import (
    expand_message_xmd,
    hash_to_field,
    hash_to_group,
    hash_to_u,
    map_to_group,
    montgomery_u,
)

EXPANDER_DST = b"QUUX-V01-CS02-with-expander"
SUITE_DST = b"QUUX-V01-CS02-with-edwards25519_XMD:SHA-512_ELL2_RO_"


@pytest.mark.parametrize(
    ("msg", "length", "expected"),
    [  # RFC 9380, K.3 (expand_message_xmd, SHA-512)
        (b"", 32, "2eaa1f7b5715f4736e6a5dbe288257abf1faa028680c1d938cd62ac699ead642"),
        (b"abc", 32, "0eeda81f69376c80c0f8986496f22f21124cb3c562cf1dc608d2c13005553b0f"),
        (
            b"abcdef0123456789",
            32,
            "2e375fc05e05e80dbf3083796fde2911789d9e8847e1fcebf4ca4b36e239b338",
        ),
        (
            b"",
            128,
            "0687ce02eba5eb3faf1c3c539d1f04babd3c0f420edae244eeb2253b6c6d6865145c31458e824b4e8"
            "7ca61c3442dc7c8c9872b0b7250aa33e0668ccebbd2b386de658ca11a1dcceb51368721ae6dcd2d4b"
            "c86eaebc4e0d11fa02ad053289c9b28a03da6c942b2e12c14e88dbde3b0ba619d6214f47212b628f3"
            "e1b537b66efcf",
        ),
    ],
)
def test_expand_message_xmd_sha512_vectors(msg: bytes, length: int, expected: str) -> None:
    assert expand_message_xmd(msg, EXPANDER_DST, length).hex() == expected


def _encode(x: int, y: int) -> bytes:
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _times_8(point: bytes) -> bytes:
    for _ in range(3):
        point = crypto_core_ed25519_add(point, point)
    return point


def test_edwards25519_ro_suite_vector() -> None:
    """RFC 9380, J.5.1 (edwards25519_XMD:SHA-512_ELL2_RO_), msg = "": hash_to_field gives the
    RFC's u0 and u1; libsodium's map gives ``8 Q0`` and ``8 Q1`` when told the sign of x the RFC
    chose; their sum is the RFC's P."""
    u0, u1 = hash_to_field(b"", SUITE_DST)
    assert u0 == 0x03FEF4813C8CB5F98C6EEF88FAE174E6E7D5380DE2B007799AC7EE712D203F3A
    assert u1 == 0x780BDDDD137290C8F589DC687795AAFAE35F6B674668D92BF92AE793E6A60C75
    q0 = (
        0x6549118F65BB617B9E8B438DECEDC73C496EAED496806D3B2EB9EE60B88E09A7,
        0x7315BCC8CF47ED68048D22BAD602C6680B3382A08C7C5D3F439A973FB4CF9FEB,
    )
    q1 = (
        0x31DCFC5C58AA1BEE6E760BF78CBE71C2BEAD8CEBB2E397ECE0F37A3DA19C9ED2,
        0x7876D81474828D8A5928B50C82420B2BD0898D819E9550C5C82C39FC9BAFA196,
    )
    p = (
        0x3C3DA6925A3C3C268448DCABB47CCDE5439559D9599646A8260E47B1E4822FC6,
        0x09A6C8561A0B22BEF63124C588CE4C62EA83A3C899763AF26D795302E115DC21,
    )
    mapped0, mapped1 = map_to_group(u0, q0[0] & 1), map_to_group(u1, q1[0] & 1)
    assert mapped0 == _times_8(_encode(*q0)) and mapped1 == _times_8(_encode(*q1))
    assert crypto_core_ed25519_add(mapped0, mapped1) == _encode(*p)
    # the other sign gives the negated point: same y, other x parity
    flipped = map_to_group(u0, 1 - (q0[0] & 1))
    assert flipped[:31] == mapped0[:31] and flipped[31] ^ mapped0[31] == 0x80


def test_hashed_points_are_in_the_prime_order_subgroup_with_matching_u() -> None:
    items = [secrets.token_bytes(n) for n in (0, 1, 31, 64, 200)]
    points = [hash_to_group(item, b"test") for item in items]
    assert all(crypto_core_ed25519_is_valid_point(point) for point in points)
    expected = [crypto_sign_ed25519_pk_to_curve25519(point) for point in points]
    assert montgomery_u(points) == expected == hash_to_u(items, b"test")
    assert hash_to_group(b"x", b"test") != hash_to_group(b"x", b"other tag")
    with pytest.raises(ValueError, match="identity"):
        montgomery_u([(1).to_bytes(32, "little")])
    with pytest.raises(ValueError, match="tag"):
        expand_message_xmd(b"", b"", 32)
