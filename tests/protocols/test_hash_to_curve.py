"""Known-answer tests for :mod:`privledger.protocols.hash_to_curve` (RFC 9380 vectors)."""

from __future__ import annotations

import secrets

import pytest
from nacl.bindings import crypto_core_ed25519_add, crypto_scalarmult

from privledger.protocols import hash_to_curve
from privledger.protocols.hash_to_curve import (
    P25519,
    expand_message_xmd,
    hash_to_field,
    hash_to_u,
    map_to_curve,
)
from tests.protocols.subgroup import in_prime_order_subgroup

EXPANDER_DST = b"QUUX-V01-CS02-with-expander"
SUITE_DST = b"QUUX-V01-CS02-with-curve25519_XMD:SHA-512_ELL2_RO_"


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


# RFC 9380, J.4.1 (curve25519_XMD:SHA-512_ELL2_RO_): msg, P.x, u0, u1, Q0 (x, y), Q1 (x, y)
SUITE_VECTORS = [
    (
        b"",
        "2de3780abb67e861289f5749d16d3e217ffa722192d16bbd9d1bfb9d112b98c0",
        "005fe8a7b8fef0a16c105e6cadf5a6740b3365e18692a9c05bfbb4d97f645a6a",
        "1347edbec6a2b5d8c02e058819819bee177077c9d10a4ce165aab0fd0252261a",
        (
            "36b4df0c864c64707cbf6cf36e9ee2c09a6cb93b28313c169be29561bb904f98",
            "6cd59d664fb58c66c892883cd0eb792e52055284dac3907dd756b45d15c3983d",
        ),
        (
            "3fa114783a505c0b2b2fbeef0102853c0b494e7757f2a089d0daae7ed9a0db2b",
            "76c0fe7fec932aaafb8eefb42d9cbb32eb931158f469ff3050af15cfdbbeff94",
        ),
    ),
    (
        b"abc",
        "2b4419f1f2d48f5872de692b0aca72cc7b0a60915dd70bde432e826b6abc526d",
        "49bed021c7a3748f09fa8cdfcac044089f7829d3531066ac9e74e0994e05bc7d",
        "5c36525b663e63389d886105cee7ed712325d5a97e60e140aba7e2ce5ae851b6",
        (
            "16b3d86e056b7970fa00165f6f48d90b619ad618791661b7b5e1ec78be10eac1",
            "4ab256422d84c5120b278cbdfc4e1facc5baadffeccecf8ee9bf3946106d50ca",
        ),
        (
            "7ec29ddbf34539c40adfa98fcb39ec36368f47f30e8f888cc7e86f4d46e0c264",
            "10d1abc1cae2d34c06e247f2141ba897657fb39f1080d54f09ce0af128067c74",
        ),
    ),
    (
        b"abcdef0123456789",
        "68ca1ea5a6acf4e9956daa101709b1eee6c1bb0df1de3b90d4602382a104c036",
        "6412b7485ba26d3d1b6c290a8e1435b2959f03721874939b21782df17323d160",
        "24c7b46c1c6d9a21d32f5707be1380ab82db1054fde82865d5c9e3d968f287b2",
        (
            "71de3dadfe268872326c35ac512164850860567aea0e7325e6b91a98f86533ad",
            "26a08b6e9a18084c56f2147bf515414b9b63f1522e1b6c5649f7d4b0324296ec",
        ),
        (
            "5704069021f61e41779e2ba6b932268316d6d2a6f064f997a22fef16d1eaeaca",
            "50483c7540f64fb4497619c050f2c7fe55454ec0f0e79870bb44302e34232210",
        ),
    ),
    (
        b"q128_" + b"q" * 128,
        "096e9c8bae6c06b554c1ee69383bb0e82267e064236b3a30608d4ed20b73ac5a",
        "5e123990f11bbb5586613ffabdb58d47f64bb5f2fa115f8ea8df0188e0c9e1b5",
        "5e8553eb00438a0bb1e7faa59dec6d8087f9c8011e5fb8ed9df31cb6c0d4ac19",
        (
            "7a94d45a198fb5daa381f45f2619ab279744efdd8bd8ed587fc5b65d6cea1df0",
            "67d44f85d376e64bb7d713585230cdbfafc8e2676f7568e0b6ee59361116a6e1",
        ),
        (
            "30506fb7a32136694abd61b6113770270debe593027a968a01f271e146e60c18",
            "7eeee0e706b40c6b5174e551426a67f975ad5a977ee2f01e8e20a6d612458c3b",
        ),
    ),
    (
        b"a512_" + b"a" * 512,
        "1bc61845a138e912f047b5e70ba9606ba2a447a4dade024c8ef3dd42b7bbc5fe",
        "20f481e85da7a3bf60ac0fb11ed1d0558fc6f941b3ac5469aa8b56ec883d6d7d",
        "017d57fd257e9a78913999a23b52ca988157a81b09c5442501d07fed20869465",
        (
            "02d606e2699b918ee36f2818f2bc5013e437e673c9f9b9cdc15fd0c5ee913970",
            "29e9dc92297231ef211245db9e31767996c5625dfbf92e1c8107ef887365de1e",
        ),
        (
            "38920e9b988d1ab7449c0fa9a6058192c0c797bb3d42ac345724341a1aa98745",
            "24dcc1be7c4d591d307e89049fd2ed30aae8911245a9d8554bf6032e5aa40d3d",
        ),
    ),
]


@pytest.mark.parametrize(("msg", "px", "u0", "u1", "q0", "q1"), SUITE_VECTORS)
def test_curve25519_ro_suite_vectors(
    msg: bytes, px: str, u0: str, u1: str, q0: tuple[str, str], q1: tuple[str, str]
) -> None:
    """Every step of the suite: hash_to_field's u0 and u1, map_to_curve's Q0 and Q1 (both
    coordinates, so the sign rule too), and the u-coordinate of P = clear_cofactor(Q0 + Q1)."""
    assert hash_to_field(msg, SUITE_DST) == (int(u0, 16), int(u1, 16))
    for u, (qx, qy) in ((u0, q0), (u1, q1)):
        xn, xd, y = map_to_curve(int(u, 16))
        assert (xn * pow(xd, -1, P25519) % P25519, y) == (int(qx, 16), int(qy, 16))
    assert hash_to_u([msg], SUITE_DST) == [int(px, 16).to_bytes(32, "little")]


def test_a_batch_hashes_each_item_as_alone() -> None:
    """The batch's shared inversion and exponentiation call change nothing per item."""
    items = [vector[0] for vector in SUITE_VECTORS] + [secrets.token_bytes(20) for _ in range(30)]
    assert hash_to_u(items, SUITE_DST) == [hash_to_u([item], SUITE_DST)[0] for item in items]
    assert hash_to_u([], SUITE_DST) == []


def test_hashed_points_are_in_the_prime_order_subgroup() -> None:
    items = [secrets.token_bytes(n) for n in (0, 1, 31, 64, 200)] + [b"x"] * 2
    hashed = hash_to_u(items, b"test")
    assert all(in_prime_order_subgroup(u) for u in hashed)
    assert hashed[-1] == hashed[-2] != hash_to_u([b"x"], b"other tag")[0]
    key = secrets.token_bytes(32)  # X25519 keeps them there
    assert all(in_prime_order_subgroup(crypto_scalarmult(key, u)) for u in hashed)


def _u_times(u: int, factor: int) -> int:
    """The u-coordinate of ``factor * Q`` (a power of two) for the point Q with u-coordinate
    ``u``, by libsodium's edwards25519 doubling: y = (u - 1) / (u + 1), u = (1 + y) / (1 - y)."""
    point = ((u - 1) * pow(u + 1, -1, P25519) % P25519).to_bytes(32, "little")
    while factor > 1:
        point, factor = crypto_core_ed25519_add(point, point), factor // 2
    y = int.from_bytes(point, "little") & ((1 << 255) - 1)
    return (1 + y) * pow(1 - y, -1, P25519) % P25519


def test_equal_and_opposite_summands() -> None:
    """The sum's two special cases, which a hash reaches with probability about 2^-252: for
    Q0 = Q1 the result is 8 (2 Q0), for Q0 = -Q1 the identity (which hash_to_u refuses)."""
    xn, xd, y = q = map_to_curve(7)
    x, z = hash_to_curve._sum_times_8(q, q)
    (doubled,) = hash_to_curve._divide([x], [z])
    assert doubled == _u_times(xn * pow(xd, -1, P25519) % P25519, 16)
    assert in_prime_order_subgroup(int(doubled).to_bytes(32, "little"))
    assert hash_to_curve._sum_times_8(q, (xn, xd, P25519 - y))[1] == 0


def test_bad_tags_and_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="tag"):
        expand_message_xmd(b"", b"", 32)
    with pytest.raises(ValueError, match="tag"):
        hash_to_u([b"x"], bytes(256))
    with pytest.raises(ValueError, match="expand"):
        expand_message_xmd(b"", b"tag", 65536)
