from __future__ import annotations

import json
import random
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from privledger.protocols.channel import Channel, ChannelError, channel_pair, send_records
from privledger.protocols.hash_to_curve import hash_to_u
from privledger.protocols.psi import ecdh
from privledger.protocols.psi.common import PsiHandshakeError, PsiResult
from privledger.protocols.psi.ecdh import run_psi
from tests.protocols.subgroup import in_prime_order_subgroup

TIMEOUT = 30.0


def _x25519(key: X25519PrivateKey, u: bytes) -> bytes:
    return key.exchange(X25519PublicKey.from_public_bytes(u))


def _run_both(
    requester_items: Sequence[bytes],
    provider_items: Sequence[bytes],
    *,
    reveal: bool = False,
    workers: int = 1,
    requester_is_side_a: bool = True,
) -> tuple[PsiResult, PsiResult, Channel, Channel]:
    a, b = channel_pair()
    requester_channel, provider_channel = (a, b) if requester_is_side_a else (b, a)
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(
            run_psi,
            requester_channel,
            requester_items,
            role="requester",
            reveal_to_provider=reveal,
            workers=workers,
            timeout=TIMEOUT,
        )
        provider = pool.submit(
            run_psi,
            provider_channel,
            provider_items,
            role="provider",
            reveal_to_provider=reveal,
            workers=workers,
            timeout=TIMEOUT,
        )
        return requester.result(), provider.result(), requester_channel, provider_channel


def _random_items(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(rng.randint(0, 40)) for _ in range(count)]


def test_x25519_commutes_for_random_u() -> None:
    for _ in range(50):
        a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        u = secrets.token_bytes(32)
        assert _x25519(a, _x25519(b, u)) == _x25519(b, _x25519(a, u))


@pytest.mark.parametrize("u", [bytes(32), (1).to_bytes(32, "little"), b"\xff" * 32])
def test_small_order_u_gives_zero_output_for_every_key(u: bytes) -> None:
    # b"\xff" * 32 is 2^255 - 1 after masking bit 255, i.e. p + 18 = 18 mod p: not small-order.
    small_order = u != b"\xff" * 32
    for _ in range(5):
        key = X25519PrivateKey.generate()
        if small_order:
            with pytest.raises(ValueError):
                _x25519(key, u)
        else:
            assert _x25519(key, u) != bytes(32)


@pytest.mark.parametrize("seed", range(4))
def test_intersection_matches_python_sets(seed: int) -> None:
    rng = random.Random(seed)
    pool = _random_items(rng, 600)
    x = rng.sample(pool, rng.randint(1, 400))
    y = rng.sample(pool, rng.randint(1, 400)) + _random_items(rng, 50)
    requester, provider, *_ = _run_both(x, y)
    assert requester.intersection == sorted(set(x) & set(y))
    assert requester.learned_output
    assert requester.peer_size == len(set(y))
    assert provider == PsiResult([], False, len(set(x)))


@pytest.mark.parametrize("reveal", [False, True])
@pytest.mark.parametrize("requester_is_side_a", [True, False])
def test_reveal_to_provider(reveal: bool, requester_is_side_a: bool) -> None:
    x = [b"alice", b"bob", b"carol", b"dave"]
    y = [b"carol", b"erin", b"alice", b"frank", b"grace"]
    requester, provider, r_channel, p_channel = _run_both(
        x, y, reveal=reveal, requester_is_side_a=requester_is_side_a
    )
    assert requester == PsiResult([b"alice", b"carol"], True, 5)
    expected = [b"alice", b"carol"] if reveal else []
    assert provider == PsiResult(expected, reveal, 4)
    assert r_channel.transcript_hash == p_channel.transcript_hash != bytes(32)


@pytest.mark.parametrize(("x", "y"), [([], []), ([], [b"a", b"b"]), ([b"a", b"b"], [])])
def test_empty_sets(x: list[bytes], y: list[bytes]) -> None:
    requester, provider, *_ = _run_both(x, y, reveal=True)
    assert requester == PsiResult([], True, len(y))
    assert provider == PsiResult([], True, len(x))


def test_disjoint_and_identical_sets() -> None:
    x = [i.to_bytes(4, "big") for i in range(300)]
    y = [i.to_bytes(4, "big") for i in range(300, 517)]
    requester, provider, *_ = _run_both(x, y, reveal=True)
    assert requester.intersection == provider.intersection == []
    requester, provider, *_ = _run_both(y, list(reversed(y)), reveal=True)
    assert requester.intersection == provider.intersection == sorted(y)


def test_duplicates_are_removed() -> None:
    x = [b"a", b"a", b"b", b"c", b"c", b"c"]
    y = [b"c", b"c", b"a", b"z", b"z"]
    requester, provider, *_ = _run_both(x, y, reveal=True)
    assert requester == PsiResult([b"a", b"c"], True, 3)
    assert provider == PsiResult([b"a", b"c"], True, 3)


def test_unicode_binary_and_long_items() -> None:
    long_item = secrets.token_bytes(10_000)
    x = ["naïve".encode(), "東京".encode(), "😀".encode(), b"", b"\x00", long_item, b"only-x"]
    y = ["東京".encode(), "😀".encode(), b"", b"\x00\x00", long_item, long_item[:-1]]
    requester, provider, *_ = _run_both(x, y, reveal=True)
    expected = sorted(["東京".encode(), "😀".encode(), b"", long_item])
    assert requester.intersection == provider.intersection == expected


def test_parallel_path_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks over a thread pool: the same result and transcript as in one thread."""
    monkeypatch.setattr(ecdh, "_CHUNK", 50)
    rng = random.Random(7)
    pool = _random_items(rng, 700)
    x, y = pool[:437], pool[200:]
    requester, provider, r_channel, p_channel = _run_both(x, y, reveal=True, workers=2)
    assert requester.intersection == provider.intersection == sorted(set(x) & set(y))
    assert r_channel.transcript_hash == p_channel.transcript_hash


def test_items_are_hashed_into_the_prime_order_subgroup_and_blinded_with_x25519() -> None:
    items = [b"", b"one", "\u00e9".encode(), bytes(range(256))]
    hashed = ecdh.hash_items(items)
    assert all(in_prime_order_subgroup(u) for u in hashed)
    assert hashed == hash_to_u(
        items, b"privledger/ecdh-psi/v3-with-curve25519_XMD:SHA-512_ELL2_RO_"
    )
    private = secrets.token_bytes(32)
    key = X25519PrivateKey.from_private_bytes(private)
    assert ecdh._blind_items(repeat(private), items) == b"".join(_x25519(key, u) for u in hashed)


def test_x25519_matches_rfc7748() -> None:
    """RFC 7748 section 5.2, first test vector (bit 255 of the u-coordinate set, ignored)."""
    scalar = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    expected = bytes.fromhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
    assert ecdh._reblind(repeat(scalar), u + u) == expected + expected


def test_small_order_point_from_peer_is_refused() -> None:
    with pytest.raises(ChannelError, match="small-order"):
        ecdh._reblind(repeat(secrets.token_bytes(32)), secrets.token_bytes(32) + bytes(32))


@pytest.mark.parametrize("requester_reveal", [True, False])
def test_mode_mismatch_refused_by_both(requester_reveal: bool) -> None:
    a, b = channel_pair()
    ends: list[tuple[Channel, ecdh.Role, bool]] = [
        (a, "requester", requester_reveal),
        (b, "provider", not requester_reveal),
    ]
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(run_psi, end, [b"a"], role=role, reveal_to_provider=reveal, timeout=TIMEOUT)
            for end, role, reveal in ends
        ]
        for future in futures:
            with pytest.raises(PsiHandshakeError, match="mode mismatch"):
                future.result(TIMEOUT)


@pytest.mark.parametrize("role", ["requester", "provider"])
def test_same_role_on_both_sides_refused(role: ecdh.Role) -> None:
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(run_psi, end, [b"a"], role=role, timeout=TIMEOUT) for end in (a, b)]
        for future in futures:
            with pytest.raises(PsiHandshakeError, match="both parties are"):
                future.result(TIMEOUT)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"\xff not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        ({"protocol": "other-psi"}, "peer speaks 'other-psi'"),
        ({"version": 1}, "version 1"),  # v1 hashed items onto the curve or its twist
        ({"role": "spectator"}, "bad role"),
        ({"reveal_to_provider": "yes"}, "bad role/mode"),
        ({"size": -1}, "bad set size"),
        ({"size": True}, "bad set size"),
    ],
)
def test_bad_peer_header_refused(header: bytes | dict[str, object], match: str) -> None:
    if isinstance(header, dict):
        fields: dict[str, object] = {
            "protocol": ecdh.PROTOCOL,
            "version": ecdh.VERSION,
            "role": "provider",
            "reveal_to_provider": False,
            "size": 1,
        }
        header = json.dumps(fields | header).encode()
    a, b = channel_pair()
    b.send(header)
    with pytest.raises(PsiHandshakeError, match=match):
        run_psi(a, [b"x"], role="requester", timeout=TIMEOUT)


def test_peer_sending_wrong_number_of_points_is_refused() -> None:
    a, b = channel_pair()
    header = {
        "protocol": ecdh.PROTOCOL,
        "version": ecdh.VERSION,
        "role": "requester",
        "reveal_to_provider": False,
        "size": 3,
    }
    a.send(json.dumps(header).encode())
    send_records(a, np.zeros((2, 32), dtype=np.uint8))
    with pytest.raises(ChannelError, match="expected 3 records, got 2"):
        run_psi(b, [b"x"], role="provider", timeout=TIMEOUT)


def test_bad_arguments() -> None:
    a, _ = channel_pair()
    with pytest.raises(ValueError, match="role"):
        run_psi(a, [b"x"], role="server")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        run_psi(a, ["text"], role="requester")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="workers"):
        run_psi(a, [b"x"], role="requester", workers=0, timeout=0.01)


def test_larger_sets_with_half_overlap() -> None:
    common = [secrets.token_bytes(16) for _ in range(1500)]
    x = common + [secrets.token_bytes(16) for _ in range(1501)]
    y = common + [secrets.token_bytes(16) for _ in range(1277)]
    requester, provider, r_channel, p_channel = _run_both(x, y)
    assert requester.intersection == sorted(common)
    assert (requester.peer_size, provider.peer_size) == (2777, 3001)
    assert r_channel.transcript_hash == p_channel.transcript_hash
