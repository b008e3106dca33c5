from __future__ import annotations

import math
import secrets

import numpy as np
import pytest

from privledger.protocols.psi import rr22_okvs as okvs


def _keys(n: int) -> np.ndarray:
    return np.frombuffer(secrets.token_bytes(16 * n), dtype=np.uint8).reshape(n, 16)


def _values(n: int, width: int) -> np.ndarray:
    return np.frombuffer(secrets.token_bytes(n * width), dtype=np.uint8).reshape(n, width)


@pytest.mark.parametrize("n", [1, 2, 17, 1000, 20_000])
@pytest.mark.parametrize("width", [8, 24])
def test_decode_gives_encoded_values(n: int, width: int) -> None:
    params = okvs.OkvsParams.for_items(n)
    seed = secrets.token_bytes(okvs.SEED_BYTES)
    keys, values = _keys(n), _values(n, width)
    table = okvs.encode(params, seed, keys, values)
    assert table.shape == (params.size, width)
    assert np.array_equal(okvs.Decoder(params, table).decode(seed, keys), values)


def test_clusters() -> None:
    n = 5000
    params = okvs.OkvsParams.for_items(n, cluster_items=512)
    assert params.clusters == 10
    assert params.capacity > 512  # the binomial tail bound above the mean
    seed = secrets.token_bytes(okvs.SEED_BYTES)
    keys, values = _keys(n), _values(n, 16)
    table = okvs.encode(params, seed, keys, values)
    assert np.array_equal(okvs.Decoder(params, table).decode(seed, keys), values)


def test_keys_given_in_cluster_order_give_the_same_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """``clustered``: keys and values already in :func:`.by_cluster` order, one cluster per
    group as in RR22 at 2^20 (the table does not depend on the keys' order)."""
    monkeypatch.setattr(okvs, "GROUP_ITEMS", 700)
    n = 5000
    params = okvs.OkvsParams.for_items(n, cluster_items=512)
    seed = secrets.token_bytes(okvs.SEED_BYTES)
    keys, values = _keys(n), _values(n, 8)
    order, starts = okvs.by_cluster(params, seed, keys)
    table = okvs.encode(params, seed, keys[order], values[order], (order, starts), clustered=True)
    assert np.array_equal(table, okvs.encode(params, seed, keys, values, (order, starts)))
    assert np.array_equal(okvs.Decoder(params, table).decode(seed, keys), values)


def test_clusters_solved_in_groups_and_decoded_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """2^24 keys are solved a few clusters at a time; the same code path at a small size."""
    monkeypatch.setattr(okvs, "GROUP_ITEMS", 700)
    monkeypatch.setattr(okvs, "HASH_CHUNK", 999)
    n = 5000
    params = okvs.OkvsParams.for_items(n, cluster_items=256)
    assert params.clusters == 20 and 700 // params.capacity == 1
    seed = secrets.token_bytes(okvs.SEED_BYTES)
    keys, values = _keys(n), _values(n, 16)
    decoder = okvs.Decoder(params, okvs.encode(params, seed, keys, values))
    assert np.array_equal(decoder.decode(seed, keys), values)
    # default values: each key's own 64-bit hash value H(x), RR22's encoding
    own = okvs.Decoder(params, okvs.encode(params, seed, keys)).decode(seed, keys)
    assert np.array_equal(own.view(np.uint64).reshape(-1), okvs.rows(params, seed, keys).value)


def test_parameters_follow_the_paper() -> None:
    # RR22's fit at w = 3: e ~ 1.2274 at 2^20 items (lambda = 40), g = 1
    assert okvs.expansion(1 << 20, 40) == pytest.approx(1.2274, abs=1e-3)
    assert okvs.core_bound(1 << 20, 40) == 1
    params = okvs.OkvsParams.for_items(1 << 20)
    assert params.size / (1 << 20) < 1.3
    assert params.dense <= okvs.MAX_DENSE
    # the formula read backwards gives the lambda it was solved for
    sparse = math.ceil(okvs.expansion(4096, 30) * 4096)
    assert okvs.failure_bits(4096, sparse) == pytest.approx(30, abs=0.1)


def test_dense_columns_solve_a_large_core() -> None:
    """Below the peeling threshold most keys stay in the 2-core; the dense part solves it."""
    n = 40
    params = okvs.OkvsParams(n, 1, n, 40, 60)
    seed = secrets.token_bytes(okvs.SEED_BYTES)
    keys, values = _keys(n), _values(n, 16)
    hashed = okvs.rows(params, seed, keys)
    *_, core = okvs.peel(hashed.cells, params.size)
    assert core.size > 0
    table = okvs.encode_rows(params, hashed, values)
    assert np.array_equal(okvs.Decoder(params, table).decode_rows(hashed), values)


def test_unsolvable_core_raises() -> None:
    n = 100
    params = okvs.OkvsParams(n, 1, n, 60, 8)
    with pytest.raises(okvs.OkvsError, match="singular"):
        okvs.encode(params, secrets.token_bytes(32), _keys(n), _values(n, 8))


def test_cluster_overflow_raises() -> None:
    params = okvs.OkvsParams(100, 2, 10, 40, 41)
    with pytest.raises(okvs.OkvsError, match="overflowed"):
        okvs.encode(params, secrets.token_bytes(32), _keys(100), _values(100, 8))


def test_cluster_capacity_tail() -> None:
    # a bound above the mean that grows with the security level
    low = okvs.cluster_capacity(1 << 20, 16, 10)
    high = okvs.cluster_capacity(1 << 20, 16, 41)
    assert (1 << 16) < low < high < (1 << 16) + 12 * 256


def test_failure_rate_at_small_sizes_matches_the_formula() -> None:
    """Measure how often peeling leaves a 2-core larger than ``g`` at parameters solved for
    ``lambda`` bits, at small sizes where the event is frequent enough to count: the rate must
    not exceed ``2^-lambda`` by more than the fit's slack (x2) and the sampling error; at a
    smaller expansion it must be higher (the formula's direction)."""
    n, trials = 256, 1500
    rates = {}
    for ssp in (3, 6):
        e, g = okvs.expansion(n, ssp), okvs.core_bound(n, ssp)
        params = okvs.OkvsParams(n, 1, n, math.ceil(e * n), g + ssp)
        failures = 0
        for _ in range(trials):
            hashed = okvs.rows(params, secrets.token_bytes(32), _keys(n))
            *_, core = okvs.peel(hashed.cells, params.size)
            failures += core.size > g
        rates[ssp] = failures / trials
        bound = 2 * 2.0**-ssp
        assert rates[ssp] <= bound + 4 * math.sqrt(bound / trials), (ssp, rates[ssp])
    assert rates[3] > rates[6]


def test_checks() -> None:
    params = okvs.OkvsParams.for_items(10)
    with pytest.raises(ValueError, match="32 bytes"):
        okvs.rows(params, bytes(16), _keys(3))
    with pytest.raises(ValueError, match="more keys"):
        okvs.encode(params, bytes(32), _keys(11), _values(11, 8))
    with pytest.raises(ValueError, match="does not match"):
        okvs.Decoder(params, np.zeros((3, 8), dtype=np.uint8))
