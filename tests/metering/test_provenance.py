from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privledger.metering.provenance import Contribution, basis_points, provenance


@given(st.lists(st.integers(0, 10**30), min_size=1, max_size=12).filter(lambda w: sum(w) > 0))
def test_basis_points_always_sum_to_10000_and_follow_weights(weights: list[int]) -> None:
    bps = basis_points(weights)
    assert sum(bps) == 10_000
    total = sum(weights)
    for weight, share in zip(weights, bps, strict=True):
        assert abs(share - weight * 10_000 / total) < 1  # largest remainder: within one bp


def test_basis_points_refuse_bad_weights() -> None:
    with pytest.raises(ValueError):
        basis_points([0, 0])
    with pytest.raises(ValueError):
        basis_points([5, -1])


def test_psi_weights_by_matched_rows_times_price_requester_excluded() -> None:
    record = provenance(
        7,
        "psi",
        requester_org=3,
        contributions=[
            Contribution(3, "0xown", units=500, unit_price=10),
            Contribution(1, "0xa", units=300, unit_price=2),
            Contribution(2, "0xb", units=100, unit_price=2),
        ],
    )
    assert record.payees == (1, 2)
    assert record.bps == (7_500, 2_500)
    assert len(record.hash) == 32
    same = provenance(7, "psi", 3, list(record.contributions))
    assert same.hash == record.hash


def test_derived_dataset_passes_its_share_upstream() -> None:
    record = provenance(
        1, "psi", 9, [Contribution(1, "0xderived", 10, 100, upstream_bps=2_000, parent_orgs=(2, 3))]
    )
    assert dict(zip(record.payees, record.bps, strict=True)) == {1: 8_000, 2: 1_000, 3: 1_000}


def test_nothing_earned_splits_equally_or_returns_to_requester() -> None:
    record = provenance(1, "psi", 9, [Contribution(1, "0xa", 0, 5), Contribution(2, "0xb", 4, 0)])
    assert (record.payees, record.bps) == ((1, 2), (5_000, 5_000))
    alone = provenance(1, "psi", 9, [Contribution(9, "0xown", 10, 5)])
    assert (alone.payees, alone.bps) == ((9,), (10_000,))


def test_a_provider_the_task_completed_without_is_paid_nothing() -> None:
    everyone = [Contribution(1, "0xa", 10, 5), Contribution(2, "0xb", 30, 5)]
    present = provenance(1, "fl", 9, everyone)
    assert b'"absent"' not in present.canonical_json()  # records of finished tasks unchanged
    record = provenance(1, "fl", 9, everyone, absent=[2])
    assert (record.payees, record.bps, record.absent) == ((1,), (10_000,), (2,))
    assert record.hash != present.hash
    idle = provenance(1, "fl", 9, [Contribution(1, "0xa", 0, 5), Contribution(2, "0xb", 0, 5)], [1])
    assert (idle.payees, idle.bps) == ((2,), (10_000,))  # the equal split skips the absent too
    nobody = provenance(1, "fl", 9, everyone, absent=[1, 2])
    assert (nobody.payees, nobody.bps) == ((9,), (10_000,))  # back to the requester
