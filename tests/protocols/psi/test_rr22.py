from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.channel import ChannelError, channel_pair
from privledger.protocols.psi import kkrt, rr22, rr22_okvs
from privledger.protocols.psi.common import PsiHandshakeError
from privledger.protocols.psi.rr22 import run_psi

from .pairs import TIMEOUT, check_psi


def test_column_interface() -> None:
    x = pa.array([f"+86{i}" for i in range(300)])
    y = pa.array([f"+86{i}" for i in range(200, 700)], type=pa.large_string())
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(
            rr22.run_psi_column, a, x, role="requester", reveal_to_provider=True, timeout=TIMEOUT
        )
        provider = pool.submit(
            rr22.run_psi_column, b, y, role="provider", reveal_to_provider=True, timeout=TIMEOUT
        )
        r, p = requester.result(), provider.result()
    expected = sorted(f"+86{i}".encode() for i in range(200, 300))
    assert r.intersection.to_pylist() == expected
    assert p.intersection.to_pylist() == expected
    assert r.peer_size == 500 and p.peer_size == 300


def test_keys_hashed_and_decoded_in_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both parties hash and decode their keys :data:`.rr22_okvs.HASH_CHUNK` at a time (a
    small chunk in the protocol), and the requester looks up half of the provider's tags in
    its second thread: chunk sizes that divide neither set change nothing."""
    monkeypatch.setattr(rr22_okvs, "HASH_CHUNK", 37)
    monkeypatch.setattr(rr22, "LOOKUP_SPLIT", 53)
    x = [f"x{i}".encode() for i in range(500)]
    y = [f"x{i}".encode() for i in range(300, 1100)]
    check_psi(run_psi, x, y)


def test_kkrt_peer_is_refused() -> None:
    """The RR22 side refuses a KKRT header. (The side that receives first refuses before it
    sends its own header -- common.handshake -- so the other side only times out here.)"""
    a, b = channel_pair()
    with ThreadPoolExecutor(2) as pool:
        provider = pool.submit(run_psi, b, [b"x"], role="provider", timeout=2.0)
        requester = pool.submit(kkrt.run_psi, a, [b"x"], role="requester", timeout=2.0)
        with pytest.raises(PsiHandshakeError):
            provider.result()
        with pytest.raises(ChannelError):
            requester.result()


def test_tag_length() -> None:
    assert rr22.tag_bytes(1 << 24, 1 << 24) == 11  # 40 + 24 + 24 bits
    assert rr22.tag_bytes(1 << 20, 1 << 20) == 10
    assert rr22.tag_bytes(1, 1) == 5


def test_output_hash_matches_its_definition() -> None:
    """H_o(t, v) = pi(x) xor x, x = v xor (t || domain), pi = AES-128 under OUTPUT_KEY."""
    values = np.frombuffer(secrets.token_bytes(16 * 5), dtype=np.uint8).reshape(5, 16)
    tweaks = np.frombuffer(secrets.token_bytes(8 * 5), dtype=np.uint64)
    got = rr22.output_hash(values, tweaks, 11)
    for row, value, tweak in zip(got, values, tweaks, strict=True):
        block = int(tweak).to_bytes(8, "little") + rr22.OUTPUT_DOMAIN.to_bytes(8, "little")
        x = bytes(a ^ b for a, b in zip(block, value.tobytes(), strict=True))
        enc = Cipher(algorithms.AES(rr22.OUTPUT_KEY), modes.ECB()).encryptor().update(x)
        assert row.tobytes() == bytes(a ^ b for a, b in zip(enc, x, strict=True))[:11]


def _lookup(index: rr22.TagIndex, peer: np.ndarray) -> np.ndarray:
    """For each peer tag, the index of the equal own tag, or -1 (from the index's pairs)."""
    own, theirs = index.matches(peer)
    found = np.full(len(peer), -1, dtype=np.int64)
    found[theirs] = own
    return found


@pytest.mark.parametrize("width", [5, 8, 10, 16])
def test_tag_index_finds_exactly_the_shared_tags(width: int) -> None:
    own = np.frombuffer(secrets.token_bytes(width * 5000), np.uint8).reshape(5000, width)
    peer = np.frombuffer(secrets.token_bytes(width * 3000), np.uint8).reshape(3000, width).copy()
    peer[::3] = own[:1000]
    peer[1] = own[0]  # a near miss in the last byte must not match
    peer[1, width - 1] ^= 1
    peer[2] = own[1]  # nor one in the first word's low bits (the slot, not the stored bits)
    peer[2, 0] ^= 1
    peer[4] = own[2]  # nor one in its high bits (the stored bits, not the slot)
    peer[4, min(width, 8) - 1] ^= 0x80
    found = _lookup(rr22.TagIndex(own), peer)
    expect = np.full(3000, -1)  # the naive reference: a dictionary of the own tags
    index = {row.tobytes(): i for i, row in enumerate(own)}
    for i, row in enumerate(peer):
        expect[i] = index.get(row.tobytes(), -1)
    assert np.array_equal(found, expect)
    assert np.array_equal(found[::3], np.arange(1000)) and found[1] == found[2] == found[4] == -1
    assert np.array_equal(_lookup(rr22.TagIndex(own[:0]), peer), np.full(3000, -1))
    assert _lookup(rr22.TagIndex(own), peer[:0]).shape == (0,)


@pytest.mark.parametrize("width", [10, 13])
@pytest.mark.parametrize("partition_bits", [0, 3, 12])
def test_tag_index_partitions_change_nothing(
    monkeypatch: pytest.MonkeyPatch, partition_bits: int, width: int
) -> None:
    """One partition, many (~8 tags each) or the default, tags with the index packed in their
    row or not: the same matches, as pairs."""
    monkeypatch.setattr(rr22, "PARTITION_BITS", partition_bits)
    monkeypatch.setattr(rr22, "PEER_CHUNK", 700)  # the peer tags in several chunks
    own = np.frombuffer(secrets.token_bytes(width * 4000), np.uint8).reshape(4000, width)
    peer = np.frombuffer(secrets.token_bytes(width * 3000), np.uint8).reshape(3000, width).copy()
    peer[1::2] = own[2000:3500]
    peer[0] = own[0]  # a near miss in the last byte
    peer[0, width - 1] ^= 1
    mine, theirs = rr22.TagIndex(own).matches(peer)
    assert sorted(zip(theirs.tolist(), mine.tolist(), strict=True)) == [
        (j, 2000 + j // 2) for j in range(1, 3000, 2)
    ]


def _provider_view(requester_items: list[bytes], provider_items: list[bytes]) -> list[bytes]:
    """Every message the provider receives in one run (its view besides its own randomness)."""
    a, b = channel_pair()
    received: list[bytes] = []
    original = b.recv_buffer

    def spy(timeout: float | None = None) -> bytes | bytearray:
        payload = original(timeout)
        received.append(bytes(payload))
        return payload

    b.recv_buffer = spy  # type: ignore[method-assign]
    with ThreadPoolExecutor(2) as pool:
        requester = pool.submit(run_psi, a, requester_items, role="requester", timeout=TIMEOUT)
        provider = pool.submit(run_psi, b, provider_items, role="provider", timeout=TIMEOUT)
        requester.result(), provider.result()
    return received


@pytest.mark.privacy
def test_random_order_is_a_uniform_permutation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Permutations of every size (the keystream in several AES calls), and over 6,000 draws
    of 3 the six orders about equally often (chi-squared, 5 degrees of freedom, p ~ 1e-6)."""
    monkeypatch.setattr(rr22, "_STREAM_CHUNK", 64)
    for n in (0, 1, 2, 7, 8, 9, 1000):
        order = rr22._random_order(n)
        assert order.dtype == np.int64 and np.array_equal(np.sort(order), np.arange(n))
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(6000):
        key = tuple(rr22._random_order(3).tolist())
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6
    assert sum((c - 1000) ** 2 / 1000 for c in counts.values()) < 35


def test_provider_view_is_independent_of_the_requester_items() -> None:
    """The provider's view -- above all ``A' = P + A``, the only message that depends on the
    requester's items -- must look the same whatever those items are. Two requester sets of
    equal size, one all in the provider's set and highly structured, one random and disjoint:
    each byte value and each bit position of ``A'`` is uniform (chi-square and bit balance at
    far-out thresholds), and the message sizes are identical."""
    n = 4000
    provider = [i.to_bytes(8, "big") for i in range(n)]
    structured = [i.to_bytes(8, "big") for i in range(n)]  # all matched, consecutive
    unrelated = [secrets.token_bytes(12) for _ in range(n)]
    cells = rr22_okvs.OkvsParams.for_items(n).size
    views = {
        name: _provider_view(items, provider)
        for name, items in (("structured", structured), ("unrelated", unrelated))
    }
    sizes = {name: [len(m) for m in view] for name, view in views.items()}
    assert sizes["structured"] == sizes["unrelated"]
    for view in views.values():
        masked = next(m for m in view if len(m) == 12 + 8 * cells)  # records header + A'
        body = np.frombuffer(masked[12:], dtype=np.uint8)
        counts = np.bincount(body, minlength=256)
        expected = body.size / 256
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 400  # 255 degrees of freedom: mean 255, sd 22.6; 400 is ~6.4 sd
        bits = np.unpackbits(body.reshape(cells, 8), axis=1).mean(axis=0)
        assert np.all(np.abs(bits - 0.5) < 6 * 0.5 / np.sqrt(cells))
