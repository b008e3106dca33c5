from __future__ import annotations

import secrets

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privledger.protocols.psi import pprf


def _prg(key: bytes, node: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(node)
    return bytes(x ^ y for x, y in zip(enc, node, strict=True))


def _naive_leaves(root: bytes, depth: int) -> list[bytes]:
    """Leaf p is reached by taking child bit (p >> (l - 1)) & 1 at level l (the module's
    layout), computed one node at a time."""
    leaves = []
    for p in range(1 << depth):
        node = root
        for level in range(depth):
            bit = (p >> level) & 1
            node = _prg(pprf.RIGHT_KEY if bit else pprf.LEFT_KEY, node)
        leaves.append(node)
    return leaves


@pytest.mark.parametrize(("trees", "depth"), [(1, 1), (3, 4), (5, 6)])
def test_full_expansion_matches_naive_reference(trees: int, depth: int) -> None:
    roots = np.frombuffer(secrets.token_bytes(16 * trees), dtype=np.uint8).reshape(trees, 16)
    leaves, sums = pprf.expand_full(roots, depth)
    assert leaves.shape == (1 << depth, trees, 16)
    for i in range(trees):
        naive = _naive_leaves(roots[i].tobytes(), depth)
        assert [leaves[p, i].tobytes() for p in range(1 << depth)] == naive
    # the level-d sums are the XOR of the leaves with last bit 0 / 1
    for i in range(trees):
        for side in (0, 1):
            acc = np.zeros(16, dtype=np.uint8)
            for p in range(1 << depth):
                if (p >> (depth - 1)) & 1 == side:
                    acc ^= leaves[p, i]
            assert np.array_equal(sums[depth - 1, side, i], acc)


@pytest.mark.parametrize(("trees", "depth"), [(1, 1), (4, 3), (7, 8)])
def test_punctured_expansion_misses_exactly_the_point(trees: int, depth: int) -> None:
    roots = np.frombuffer(secrets.token_bytes(16 * trees), dtype=np.uint8).reshape(trees, 16)
    leaves, sums = pprf.expand_full(roots, depth)
    points = np.array([secrets.randbelow(1 << depth) for _ in range(trees)], dtype=np.int64)
    off = pprf.off_path_bits(points, depth).astype(np.int64)
    chosen = sums[np.arange(depth)[:, None], off, np.arange(trees)[None, :]]
    got, totals = pprf.expand_punctured(points, np.ascontiguousarray(chosen), depth)
    expect = leaves.copy()
    expect[points, np.arange(trees)] = 0
    assert np.array_equal(got, expect)
    for i in range(trees):  # each tree's XOR of its leaves, the punctured one zero
        acc = np.zeros(16, dtype=np.uint8)
        for p in range(1 << depth):
            acc ^= expect[p, i]
        assert np.array_equal(totals[i], acc)


def test_punctured_party_sees_only_off_path_sums() -> None:
    """With the on-path sums replaced by garbage the result is unchanged: the puncturing
    party's view needs (and uses) only the off-path sums."""
    trees, depth = 3, 5
    roots = np.frombuffer(secrets.token_bytes(16 * trees), dtype=np.uint8).reshape(trees, 16)
    _, sums = pprf.expand_full(roots, depth)
    points = np.array([0, 31, 17], dtype=np.int64)
    off = pprf.off_path_bits(points, depth).astype(np.int64)
    noisy = sums.copy()
    noisy[np.arange(depth)[:, None], 1 - off, np.arange(trees)[None, :]] = 0xAA
    chosen = noisy[np.arange(depth)[:, None], off, np.arange(trees)[None, :]]
    clean = sums[np.arange(depth)[:, None], off, np.arange(trees)[None, :]]
    assert np.array_equal(chosen, clean)


def test_checks() -> None:
    with pytest.raises(ValueError, match="roots"):
        pprf.expand_full(np.zeros((2, 15), dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="depth"):
        pprf.expand_full(np.zeros((2, 16), dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="leaf indices"):
        pprf.expand_punctured(np.array([8]), np.zeros((3, 1, 16), dtype=np.uint8), 3)


def test_expansion_is_independent_of_the_aes_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    roots = np.frombuffer(secrets.token_bytes(16 * 5), dtype=np.uint8).reshape(5, 16)
    whole, _ = pprf.expand_full(roots, 6)
    monkeypatch.setattr(pprf, "_AES_CHUNK", 48)  # 3 blocks: many chunk boundaries
    chunked, _ = pprf.expand_full(roots, 6)
    assert np.array_equal(whole, chunked)


def test_expansions_into_reused_buffers_equal_fresh_ones() -> None:
    """Levels alternate between the buffers' two halves; a second expansion into the same
    buffers (fewer trees) gives the same leaves as fresh arrays, full and punctured."""
    buffers = pprf.Buffers(6, 5)
    for trees in (6, 4):
        roots = np.frombuffer(secrets.token_bytes(16 * trees), dtype=np.uint8).reshape(trees, 16)
        leaves, sums = pprf.expand_full(roots, 5)
        got, got_sums = pprf.expand_full(roots, 5, buffers)
        assert np.array_equal(got, leaves) and np.array_equal(got_sums, sums)
        assert np.shares_memory(got, buffers.leaves)
        points = np.array([secrets.randbelow(32) for _ in range(trees)], dtype=np.int64)
        off = pprf.off_path_bits(points, 5).astype(np.int64)
        chosen = np.ascontiguousarray(sums[np.arange(5)[:, None], off, np.arange(trees)[None, :]])
        reused, reused_totals = pprf.expand_punctured(points, chosen, 5, buffers)
        fresh, fresh_totals = pprf.expand_punctured(points, chosen, 5)
        assert np.array_equal(reused, fresh) and np.array_equal(reused_totals, fresh_totals)
    assert not buffers.fits(7, 5) and not buffers.fits(6, 4)
    with pytest.raises(ValueError, match="do not fit"):
        pprf.expand_full(np.zeros((7, 16), dtype=np.uint8), 5, buffers)


@pytest.mark.parametrize(("trees", "depth"), [(1, 1), (3, 4), (848, 2), (5, 7)])
def test_full_expansion_with_prefix_gives_the_prefix_xor(trees: int, depth: int) -> None:
    """``prefix``: the leaves as their running XOR in flat order (the EA accumulator), the same
    level sums; into reused buffers as the VOLE sender does."""
    roots = np.frombuffer(secrets.token_bytes(16 * trees), dtype=np.uint8).reshape(trees, 16)
    leaves, sums = pprf.expand_full(roots, depth)
    buffers = pprf.Buffers(trees, depth)
    running, running_sums = pprf.expand_full(roots, depth, buffers, prefix=True)
    flat = leaves.reshape(-1, 16).view(np.uint64)
    expected = np.bitwise_xor.accumulate(flat, axis=0)
    assert np.array_equal(running.reshape(-1, 16).view(np.uint64), expected)
    assert np.array_equal(running_sums, sums)
