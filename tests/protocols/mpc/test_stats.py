from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.sharing import MpcError, Party, PartyDropout, PeerSilent
from privledger.protocols.mpc.stats import JointStats, Statistic, joint_stats

F = 16


def _run(
    data: Sequence[np.ndarray],
    *,
    min_group_size: int = 1,
    requester: int = 0,
    statistics: Sequence[Statistic] = ("count", "sum", "mean", "variance"),
    edges: Sequence[float] | None = None,
    ddof: int = 0,
    timeout: float = 20,
) -> list[JointStats | None]:
    def work(party: Party) -> JointStats | None:
        return joint_stats(
            party,
            data[party.index],
            requester=requester,
            min_group_size=min_group_size,
            statistics=statistics,
            histogram_edges=edges,
            frac_bits=F,
            ddof=ddof,
        )

    with local_mesh(len(data), timeout=timeout) as mesh:
        return mesh.run(work)


def test_stats_match_numpy_on_five_parties() -> None:
    rng = np.random.default_rng(7)
    data = [rng.normal(250.0, 40.0, 100_000) for _ in range(5)]
    edges = [0.0, 150.0, 200.0, 250.0, 300.0, 350.0, 1000.0]
    results = _run(data, min_group_size=10, edges=edges, requester=2)
    assert [r is None for r in results] == [True, True, False, True, True]
    result = results[2]
    assert result is not None and not result.suppressed
    pooled = np.concatenate(data)
    tolerance = 5 * 2.0 ** -(F + 1)  # each party's aggregates are rounded to 2^-(F+1)
    assert result.count == pooled.size
    assert result.sum is not None and abs(result.sum - pooled.sum()) <= tolerance + 1e-9
    assert result.mean is not None and abs(result.mean - pooled.mean()) <= tolerance / pooled.size
    assert result.variance is not None
    # Q and S both carry 5 * 2^-(F+1) of rounding; var = Q/n - mean^2
    var_tolerance = tolerance * (1 + 2 * abs(pooled.mean())) / pooled.size + 1e-9
    assert abs(result.variance - pooled.var()) <= var_tolerance
    assert result.histogram == tuple(int(c) for c in np.histogram(pooled, edges)[0])


def test_sample_variance_and_negative_values() -> None:
    data = [np.array([-1.5, 2.25]), np.array([-10.0]), np.array([])]
    result = _run(data, ddof=1)[0]
    assert result is not None
    pooled = np.concatenate(data)
    assert result.count == 3
    assert result.sum == pytest.approx(pooled.sum(), abs=1e-4)
    assert result.variance == pytest.approx(pooled.var(ddof=1), abs=1e-4)


def test_group_size_threshold_suppresses_below_and_releases_at_the_boundary() -> None:
    data = [np.arange(4.0), np.arange(3.0), np.arange(3.0)]  # 10 rows
    at_limit = _run(data, min_group_size=10)[0]
    assert at_limit is not None and not at_limit.suppressed and at_limit.count == 10
    below = _run(data, min_group_size=11)[0]
    assert below == JointStats(suppressed=True)


def test_histogram_bins_below_threshold_are_suppressed() -> None:
    data = [np.array([0.5] * 5 + [1.5] * 2), np.array([0.5] * 3 + [2.5] * 4), np.array([9.0])]
    edges = [0.0, 1.0, 2.0, 3.0, 4.0]
    result = _run(data, min_group_size=4, statistics=(), edges=edges)[0]
    assert result is not None
    # bins: 8 rows, 2 rows (below 4), 4 rows (at the threshold), 0 rows (empty)
    assert result.histogram == (8, None, 4, None)
    assert result.count is None and result.sum is None


def test_only_the_requested_aggregates() -> None:
    data = [np.array([1.0, 2.0]), np.array([3.0])]
    result = _run(data, statistics=("sum",))[0]
    assert result is not None
    assert (result.count, result.sum, result.mean, result.variance) == (3, 6.0, None, None)


def test_validation_errors() -> None:
    data = [np.array([1.0]), np.array([2.0])]
    with pytest.raises(ValueError, match="min_group_size"):
        _run(data, min_group_size=0)
    with pytest.raises(ValueError, match="increasing"):
        _run(data, edges=[1.0, 1.0])
    with pytest.raises(ValueError, match="unknown"):
        _run(data, statistics=("median",))  # type: ignore[arg-type]


def test_bad_values_fail_the_task_everywhere() -> None:
    data = [np.array([1.0]), np.array([float("nan")]), np.array([2.0])]
    with pytest.raises((ValueError, PartyDropout)):
        _run(data, timeout=2)


def test_parameter_mismatch_is_refused() -> None:
    def work(party: Party) -> JointStats | None:
        return joint_stats(
            party, np.ones(3), requester=0, min_group_size=1 + party.index, frac_bits=F
        )

    with local_mesh(2, timeout=5) as mesh, pytest.raises((MpcError, PartyDropout)):
        mesh.run(work)


def test_missing_party_fails_the_requester_with_a_reason() -> None:
    with local_mesh(3, timeout=0.5) as mesh:
        party = mesh.parties[0]
        with pytest.raises(PeerSilent, match="did not answer"):
            joint_stats(party, np.ones(5), requester=0, min_group_size=1)


def test_five_parties_of_a_million_rows_match_numpy() -> None:
    """The acceptance size: 5 parties x 10^6 rows (local aggregation, then a constant-size
    protocol: well under a second in-process), against numpy on the pooled rows."""
    rng = np.random.default_rng(21)
    data = [rng.normal(300.0 * i - 500.0, 1_000.0, 10**6) for i in range(5)]  # signs mixed
    edges = [-1e4, -2e3, -5e2, 0.0, 5e2, 2e3, 1e4]
    results = _run(data, min_group_size=20, edges=edges, requester=4, timeout=30)
    result = results[4]
    assert result is not None and not result.suppressed
    assert all(r is None for r in results[:4])
    pooled = np.concatenate(data)
    tolerance = 5 * 2.0 ** -(F + 1)  # each party's S and Q are rounded to 2^-(F+1)
    assert result.count == pooled.size == 5 * 10**6
    assert result.sum is not None and abs(result.sum - pooled.sum()) <= tolerance + 1e-6
    assert result.mean is not None
    assert abs(result.mean - pooled.mean()) <= (tolerance + 1e-6) / pooled.size
    assert result.variance is not None
    assert abs(result.variance - pooled.var()) <= 1e-9 * pooled.var()
    assert result.histogram == tuple(int(c) for c in np.histogram(pooled, edges)[0])
