from __future__ import annotations

import secrets

import numpy as np
import pytest

from privledger.protocols.psi import cuckoo


def _digests(n: int) -> np.ndarray:
    return np.frombuffer(secrets.token_bytes(16 * n), dtype=np.uint8).reshape(n, 16)


def test_table_sizes_follow_the_stated_parameters() -> None:
    expected = -(-int(np.ceil(cuckoo.expansion(1 << 16) * (1 << 16))) // 128) * 128
    assert cuckoo.table_size(1 << 16) == expected
    assert cuckoo.expansion(1 << 20) == pytest.approx((40 + 130 + 20) / 123.5, abs=1e-3)
    assert cuckoo.expansion(16) > cuckoo.expansion(256) > cuckoo.expansion(1000) >= 1.27
    for n in (0, 1, 7, 100, 1000, 5000, 1 << 16, 1 << 20, 1 << 24):
        assert cuckoo.table_size(n) % 128 == 0
        assert cuckoo.table_size(n) >= 1.27 * n
        assert cuckoo.failure_bits(n, cuckoo.table_size(n)) >= 40 - 1e-9


@pytest.mark.parametrize("n", [1, 2, 3, 50, 1000, 1 << 14])
def test_build_places_every_item_in_one_of_its_bins(n: int) -> None:
    digest = _digests(n)
    placed = cuckoo.build(digest, cuckoo.table_size(n))
    loc = cuckoo.locations(digest, placed.seed, placed.bins)
    occupied = np.flatnonzero(placed.table != cuckoo.EMPTY)
    assert sorted(placed.table[occupied].tolist()) == list(range(n))
    items = placed.table[occupied]
    assert np.array_equal(loc[placed.which[items], items], occupied)


def test_locations_are_deterministic_per_seed_and_in_range() -> None:
    digest = _digests(1000)
    seed = secrets.token_bytes(16)
    loc = cuckoo.locations(digest, seed, 1280)
    assert loc.shape == (3, 1000) and loc.min() >= 0 and loc.max() < 1280
    assert np.array_equal(loc, cuckoo.locations(digest, seed, 1280))
    assert not np.array_equal(loc, cuckoo.locations(digest, secrets.token_bytes(16), 1280))


def test_overfull_table_fails_loudly_never_wrongly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuckoo, "MAX_ROUNDS", 50)
    monkeypatch.setattr(cuckoo, "MAX_ATTEMPTS", 2)
    with pytest.raises(cuckoo.CuckooError):
        cuckoo.build(_digests(200), 128)  # more items than bins: no table exists


def test_identical_digests_cannot_share_three_bins() -> None:
    # Four copies of one digest have only 3 bins between them: insertion must fail.
    digest = np.repeat(_digests(1), 4, axis=0)
    assert cuckoo.insert(cuckoo.locations(digest, bytes(16), 128), 128) is None


def test_reseeds_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = cuckoo.insert

    def flaky(loc: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray] | None:
        calls.append(bins)
        return None if len(calls) == 1 else real(loc, bins)

    monkeypatch.setattr(cuckoo, "insert", flaky)
    placed = cuckoo.build(_digests(100), cuckoo.table_size(100))
    assert placed.attempts == 2 and len(calls) == 2


@pytest.mark.parametrize("chunk", [1, 7, 1 << 15])
def test_distinct_keys_keeps_first_occurrences(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Duplicates next to each other, far apart and across the chunks that the sort keys are
    computed in; and a set without any."""
    monkeypatch.setattr(cuckoo, "_PREFIX_CHUNK", chunk)
    keys = np.frombuffer(secrets.token_bytes(16 * 500), dtype=np.uint8).reshape(500, 16).copy()
    assert np.array_equal(cuckoo.distinct_keys(keys), np.arange(500))
    keys[7] = keys[6]
    keys[499] = keys[3]
    keys[250] = keys[3]
    first = cuckoo.distinct_keys(keys)
    expected = sorted({row.tobytes(): i for i, row in reversed(list(enumerate(keys)))}.values())
    assert first.tolist() == expected
    assert 7 not in first and 250 not in first and 499 not in first and 3 in first
