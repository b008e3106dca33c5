from __future__ import annotations

import numpy as np
import pytest

from privledger.protocols.mpc import compare, ring
from privledger.protocols.mpc import sharing as sh
from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.sharing import Party

BIG = 2**62 - 1  # |x - c| must stay below 2^63


def _compare(values: list[int], thresholds: list[int], *, strict: bool, parties: int = 3):
    """Party 0 inputs the values, party ``holder`` the private thresholds; bits to party 0."""
    holder = parties - 1

    def work(party: Party) -> np.ndarray | None:
        group = party.parties
        mine = ring.words(values) if party.index == 0 else np.zeros(len(values), np.uint64)
        shares = sh.share_sum(party, group, mine)
        limit = thresholds if party.index == holder else None
        op = compare.greater_than if strict else compare.greater_equal
        bits = op(party, group, shares, limit, holder=holder)
        return compare.reveal_bits(party, group, bits, 0)

    with local_mesh(parties, timeout=10) as mesh:
        results = mesh.run(work)
    assert all(r is None for r in results[1:])
    assert results[0] is not None
    return list(results[0])


CASES = [
    (0, 0),
    (1, 0),
    (0, 1),
    (-1, 0),
    (0, -1),
    (100, 100),
    (99, 100),
    (101, 100),
    (-5, -5),
    (-6, -5),
    (BIG, BIG),
    (BIG, BIG - 1),
    (BIG - 1, BIG),
    (-BIG, BIG),
    (-BIG - 1, BIG - 1),
    (BIG, -BIG),
    (2**40 + 1, 2**40),
]


@pytest.mark.parametrize("strict", [False, True])
def test_comparison_at_boundaries(strict: bool) -> None:
    values, limits = [v for v, _ in CASES], [c for _, c in CASES]
    got = _compare(values, limits, strict=strict)
    want = [v > c if strict else v >= c for v, c in CASES]
    assert got == want


def test_comparison_random_two_parties() -> None:
    rng = np.random.default_rng(5)
    values = rng.integers(-(2**61), 2**61, 300).tolist()
    limits = [v + int(d) for v, d in zip(values, rng.integers(-2, 3, 300), strict=True)]
    assert _compare(values, limits, strict=True, parties=2) == [
        v > c for v, c in zip(values, limits, strict=True)
    ]


def test_sign_bit_random() -> None:
    rng = np.random.default_rng(6)
    values = rng.integers(-(2**63) + 1, 2**63 - 1, 500, dtype=np.int64)

    def work(party: Party) -> np.ndarray:
        group = party.parties
        mine = ring.words(values) if party.index == 1 else np.zeros(500, np.uint64)
        bits = compare.is_negative(party, group, sh.share_sum(party, group, mine))
        return sh.open_all(party, group, bits, xor=True)

    with local_mesh(2, timeout=10) as mesh:
        for opened in mesh.run(work):
            assert np.array_equal(opened.astype(bool), values < 0)


@pytest.mark.parametrize("count", [0, 1, 63, 64, 65, 1000])
def test_equality_zero_test_sizes(count: int) -> None:
    rng = np.random.default_rng(count)
    table = rng.integers(0, 2**64 - 1, count, dtype=np.uint64)
    query = np.uint64(12345)
    if count:
        table[rng.integers(0, count, 3)] = query
        table[-1] = query ^ np.uint64(1 << 63)  # differs in the top bit only
    if count > 2:
        table[-2] = query ^ np.uint64(1)  # differs in the bottom bit only

    def work(party: Party) -> np.ndarray:
        group = party.parties
        mine = table if party.index == 1 else np.full(count, query, dtype=np.uint64)
        bits = compare.equal_shared_xor(party, group, mine)
        return sh.open_all(party, group, bits, xor=True)

    with local_mesh(2, timeout=10) as mesh:
        for opened in mesh.run(work):
            assert np.array_equal(opened.astype(bool), table == query)


def test_holder_must_be_in_group_and_pass_threshold() -> None:
    with local_mesh(2, timeout=1) as mesh:
        party = mesh.parties[0]
        with pytest.raises(ValueError):
            compare.greater_equal(party, (0, 1), ring.words([1]), [0], holder=5)
        with pytest.raises(ValueError):
            compare.greater_equal(party, (0, 1), ring.words([1]), None, holder=0)
