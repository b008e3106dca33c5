from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privledger.protocols.fl.horizontal import (
    ClientData,
    FedAvg,
    FedProx,
    PlainAggregator,
    SecureAggregator,
    clip_by_norm,
    logistic_loss_grad,
    logistic_model,
    mlp_init,
    mlp_loss_grad,
    mlp_model,
    train_federated,
)
from tests.protocols.fl.conftest import Split


def _clients(split: Split, count: int = 3) -> list[ClientData]:
    order = np.random.default_rng(0).permutation(split.y_train.size)
    return [
        ClientData(split.x_train[rows], split.y_train[rows])
        for rows in np.array_split(order, count)
    ]


def _numeric_gradient(loss, params: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    grad = np.empty_like(params)
    for k in range(params.size):
        step = np.zeros_like(params)
        step[k] = 1e-6
        grad[k] = (loss(params + step) - loss(params - step)) / 2e-6
    return grad


def test_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 4)), rng.integers(0, 2, 20).astype(float)
    params = rng.normal(size=5)
    _, grad = logistic_loss_grad(params, x, y, 0.1)
    numeric = _numeric_gradient(lambda p: logistic_loss_grad(p, x, y, 0.1)[0], params)
    np.testing.assert_allclose(grad, numeric, atol=1e-6)
    params = mlp_init(4, 3, rng) + rng.normal(scale=0.1, size=4 * 3 + 2 * 3 + 1)
    _, grad = mlp_loss_grad(params, x, y, 3, 0.1)
    numeric = _numeric_gradient(lambda p: mlp_loss_grad(p, x, y, 3, 0.1)[0], params)
    np.testing.assert_allclose(grad, numeric, atol=1e-6)


def test_clipping_bounds_the_norm() -> None:
    update = np.array([3.0, 4.0])
    np.testing.assert_allclose(clip_by_norm(update, 1.0), [0.6, 0.8])
    np.testing.assert_array_equal(clip_by_norm(update, 10.0), update)


def test_fedavg_with_secagg_meets_the_pooled_baseline(breast_cancer: Split) -> None:
    clients = _clients(breast_cancer)
    model = logistic_model(1.0 / breast_cancer.y_train.size)
    strategy = FedAvg(local_epochs=5, learning_rate=0.5)
    secure = train_federated(clients, model, strategy, SecureAggregator(), rounds=40)
    plain = train_federated(clients, model, strategy, PlainAggregator(), rounds=40)
    auc = roc_auc_score(breast_cancer.y_test, model.predict(secure.params, breast_cancer.x_test))
    assert abs(auc - breast_cancer.baseline_auc) <= 0.005
    assert np.max(np.abs(secure.params - plain.params)) < 1e-3


def test_a_client_dropping_out_still_gives_the_plaintext_average(breast_cancer: Split) -> None:
    clients = _clients(breast_cancer, 5)
    model = logistic_model(1.0 / breast_cancer.y_train.size)
    strategy = FedAvg(local_epochs=2, learning_rate=0.5)
    dropouts = {1: frozenset({2}), 3: frozenset({0, 4})}
    aggregator = SecureAggregator(keep_views=True)
    secure = train_federated(clients, model, strategy, aggregator, rounds=5, dropouts=dropouts)
    plain = train_federated(
        clients, model, strategy, PlainAggregator(), rounds=5, dropouts=dropouts
    )
    assert np.max(np.abs(secure.params - plain.params)) < 1e-6
    assert sorted(aggregator.server_views[3]) == [1, 2, 3]


@pytest.mark.parametrize(
    "strategy",
    [
        FedAvg(local_epochs=2, learning_rate=0.1, batch_size=32),
        FedProx(2, 0.1, 32, proximal_mu=0.1),
    ],
)
def test_mlp_trains_under_secagg(breast_cancer: Split, strategy: FedAvg) -> None:
    clients = _clients(breast_cancer)
    model = mlp_model(8, 1.0 / breast_cancer.y_train.size)
    secure = train_federated(clients, model, strategy, SecureAggregator(), rounds=15)
    plain = train_federated(clients, model, strategy, PlainAggregator(), rounds=15)
    auc = roc_auc_score(breast_cancer.y_test, model.predict(secure.params, breast_cancer.x_test))
    assert auc > 0.98
    assert np.max(np.abs(secure.params - plain.params)) < 1e-3


def test_fedprox_pulls_towards_the_global_model(breast_cancer: Split) -> None:
    clients = _clients(breast_cancer)[:1]
    model = logistic_model(0.0)
    free = train_federated(
        clients, model, FedProx(20, 0.5, proximal_mu=0.0), PlainAggregator(), rounds=1
    )
    held = train_federated(
        clients, model, FedProx(20, 0.5, proximal_mu=1.0), PlainAggregator(), rounds=1
    )
    assert np.linalg.norm(held.params) < np.linalg.norm(free.params)


def test_columns_must_match() -> None:
    clients = [ClientData(np.zeros((3, 2)), np.zeros(3)), ClientData(np.zeros((3, 4)), np.zeros(3))]
    with pytest.raises(ValueError):
        train_federated(clients, logistic_model(0.0), FedAvg(), PlainAggregator(), rounds=1)
