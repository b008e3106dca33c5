from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privledger.protocols.fl.contribution import (
    BASIS_POINTS,
    Coalition,
    fee_shares,
    roc_auc,
    shapley_values,
    vertical_coalition_value,
)
from tests.protocols.fl.conftest import Split


def test_roc_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        scores, labels = rng.integers(0, 6, 200).astype(float), rng.integers(0, 2, 200)
        assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_shapley_of_an_additive_game_is_each_players_worth() -> None:
    worth = {0: 1.0, 1: 2.5, 2: -0.5, 3: 0.0}

    def value(coalition: Coalition) -> float:
        return sum(worth[p] for p in coalition) + (1.0 if {0, 1} <= coalition else 0.0)

    values = shapley_values([0, 1, 2, 3], value)
    assert values == pytest.approx({0: 1.5, 1: 3.0, 2: -0.5, 3: 0.0})
    assert sum(values.values()) == pytest.approx(value(frozenset(worth)) - value(frozenset()))


def test_fee_shares_sum_to_the_fee() -> None:
    assert fee_shares({0: 1.0, 1: 1.0, 2: 1.0}) == {0: 3334, 1: 3333, 2: 3333}
    assert fee_shares({0: 0.3, 1: -0.1, 2: 0.1}, fee=999) == {0: 749, 1: 0, 2: 250}
    assert fee_shares({0: -1.0, 1: 0.0}, fee=7) == {0: 4, 1: 3}
    rng = np.random.default_rng(2)
    for _ in range(50):
        shares = fee_shares(dict(enumerate(rng.normal(size=4))), fee=int(rng.integers(0, 10**6)))
        assert all(v >= 0 for v in shares.values())
    with pytest.raises(ValueError):
        shapley_values(list(range(7)), lambda _c: 0.0)


def _three_parties_one_noise(split_: Split) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    columns = [np.arange(0, 15), np.arange(15, 30)]
    train = [split_.x_train[:, c] for c in columns]
    test = [split_.x_test[:, c] for c in columns]
    train.append(rng.normal(size=(split_.y_train.size, 10)))
    test.append(rng.normal(size=(split_.y_test.size, 10)))
    return train, test


def test_a_party_with_pure_noise_gets_a_near_zero_share(breast_cancer: Split) -> None:
    train, test = _three_parties_one_noise(breast_cancer)
    value = vertical_coalition_value(train, breast_cancer.y_train, test, breast_cancer.y_test)
    values = shapley_values([0, 1, 2], value)
    shares = fee_shares(values)
    assert sum(shares.values()) == BASIS_POINTS
    assert values[2] < 0.002 < min(values[0], values[1])
    assert shares[2] < 100  # under 1% of the fee
    assert min(shares[0], shares[1]) > 4000


def test_auc_valued_shares_still_sum_to_the_fee(breast_cancer: Split) -> None:
    train, test = _three_parties_one_noise(breast_cancer)
    value = vertical_coalition_value(
        train, breast_cancer.y_train, test, breast_cancer.y_test, metric="auc"
    )
    assert value(frozenset()) == 0.5
    shares = fee_shares(shapley_values([0, 1, 2], value), fee=1234)
    assert sum(shares.values()) == 1234
    assert shares[2] < 0.1 * 1234  # AUC is coarse on 171 test rows; see the module docstring
