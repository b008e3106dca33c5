"""Horizontal FL between parties over channels: the same model as the plaintext algorithm, the
pooled baseline's AUC, exact aggregation after a client drops out, malformed clients dropped."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from privledger.protocols.channel import Channel, ChannelClosed, ChannelError, channel_pair
from privledger.protocols.fl import federation
from privledger.protocols.fl.federation import (
    FederatedModel,
    FederationConfig,
    FederationError,
    run_aggregator,
    run_client,
)
from privledger.protocols.fl.horizontal import (
    ClientData,
    FedAvg,
    PlainAggregator,
    logistic_model,
    train_federated,
)
from privledger.protocols.fl.secagg import dequantise

TIMEOUT = 30.0


class DropAfter(Channel):
    """A client's channel end that vanishes (closes) instead of making its ``sends``-th send."""

    def __init__(self, inner: Channel, sends: int) -> None:
        super().__init__(inner.side)
        self.inner, self.left = inner, sends

    def _send_raw(self, payload: bytes) -> None:
        self.left -= 1
        if self.left <= 0:
            self.inner.close()
            raise ChannelClosed("this client dropped out")
        self.inner.send(payload)

    def _recv_raw(self, timeout: float | None) -> bytes:
        return self.inner.recv(timeout)

    def close(self) -> None:
        self.inner.close()


def federate(
    shards: list[ClientData],
    config: FederationConfig,
    client_channel: Callable[[int, Channel], Channel] = lambda _i, ch: ch,
) -> tuple[FederatedModel, dict[int, object]]:
    """Aggregator in this thread, one thread per client (ids 1..k); returns the model and what
    each client's run returned or raised."""
    links, results = {}, {}
    threads = []
    for index in range(len(shards)):
        client = index + 1
        server_end, client_end = channel_pair()
        links[client] = server_end

        def work(client: int = client, index: int = index, end: Channel = client_end) -> None:
            try:
                results[client] = run_client(
                    client_channel(index, end),
                    client,
                    shards[index],
                    config,
                    index=index,
                    clients=len(shards),
                    timeout=TIMEOUT,
                )
            except ChannelError as exc:
                results[client] = exc

        threads.append(threading.Thread(target=work, daemon=True))
    for thread in threads:
        thread.start()
    try:
        model = run_aggregator(links, config, features=shards[0].features.shape[1], timeout=TIMEOUT)
    finally:
        for channel in links.values():
            channel.close()
        for thread in threads:
            thread.join(TIMEOUT)
    return model, results


@pytest.fixture(scope="module")
def raw_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    return x_train, x_test, y_train.astype(float), y_test.astype(float)


def shards_of(x: np.ndarray, y: np.ndarray, count: int) -> list[ClientData]:
    order = np.random.default_rng(0).permutation(y.size)
    return [ClientData(x[rows], y[rows]) for rows in np.array_split(order, count)]


def test_fedavg_over_channels_matches_plaintext_and_the_pooled_baseline(
    raw_split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, x_test, y_train, y_test = raw_split
    shards = shards_of(x_train, y_train, 3)
    config = FederationConfig(rounds=40, seed=7)
    model, results = federate(shards, config)
    assert results == {1: 40, 2: 40, 3: 40} and model.clients == [1, 2, 3]
    # pooled standardisation, learned only through the secure sum
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    np.testing.assert_allclose(model.mean, mean, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(model.scale, scale, rtol=1e-3)
    assert model.rows == y_train.size
    # the same algorithm in plaintext on the pooled standardisation
    standard = [ClientData((s.features - mean) / scale, s.labels) for s in shards]
    plain = train_federated(
        standard,
        logistic_model(1.0 / y_train.size),
        FedAvg(local_epochs=5, learning_rate=0.5),
        PlainAggregator(),
        rounds=40,
        seed=7,
    )
    assert np.max(np.abs(model.params - plain.params)) < 1e-3
    baseline = LogisticRegression(max_iter=10_000).fit((x_train - mean) / scale, y_train)
    pooled_auc = roc_auc_score(y_test, baseline.predict_proba((x_test - mean) / scale)[:, 1])
    auc = roc_auc_score(y_test, model.predict(x_test))
    assert abs(auc - pooled_auc) <= 0.005
    again = FederatedModel.from_json(model.to_json())
    np.testing.assert_array_equal(again.predict(x_test), model.predict(x_test))


def test_a_client_dropping_mid_round_leaves_an_exact_sum() -> None:
    rng = np.random.default_rng(5)
    vectors = {client: rng.normal(size=6) for client in (1, 2, 3, 4)}
    links, outcome = {}, {}
    threads = []
    for client, vector in vectors.items():
        server_end, client_end = channel_pair()
        links[client] = server_end
        # client 3 vanishes instead of sending its masked vector (its 3rd message)
        end = DropAfter(client_end, 3) if client == 3 else client_end

        def work(client: int = client, end: Channel = end, vector: np.ndarray = vector) -> None:
            try:
                federation._contribute(end, client, vector, 24, 4, 1, 3, TIMEOUT)
                outcome[client] = "done"
            except ChannelError as exc:
                outcome[client] = type(exc).__name__

        threads.append(threading.Thread(target=work, daemon=True))
    for thread in threads:
        thread.start()
    alive: dict[int, Channel] = dict(links)
    total = federation._secure_sum(alive, round_id=1, length=6, t=3, timeout=TIMEOUT)
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(alive) == [1, 2, 4] and outcome[3] == "ChannelClosed"
    expected = vectors[1] + vectors[2] + vectors[4]
    np.testing.assert_allclose(dequantise(total), expected, atol=4 * 2.0**-24)


def test_too_many_dropouts_fail_the_federation(
    raw_split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, _, y_train, _ = raw_split
    shards = shards_of(x_train, y_train, 3)
    with pytest.raises(FederationError, match="threshold"):
        # with 3 clients t = 3: one client vanishing in the first secure sum stops the task
        federate(shards, FederationConfig(rounds=2), lambda i, ch: DropAfter(ch, 3 if i else 99))


def test_a_client_sending_garbage_is_dropped(
    raw_split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, _, y_train, _ = raw_split
    shards = shards_of(x_train, y_train, 4)  # three stay: no sum covers fewer

    class Garbage(Channel):
        def __init__(self, inner: Channel) -> None:
            super().__init__(inner.side)
            self.inner = inner

        def _send_raw(self, payload: bytes) -> None:
            self.inner.send(b"\xff not json")

        def _recv_raw(self, timeout: float | None) -> bytes:
            return self.inner.recv(timeout)

        def close(self) -> None:
            self.inner.close()

    model, results = federate(
        shards, FederationConfig(rounds=3), lambda i, ch: Garbage(ch) if i == 1 else ch
    )
    assert model.clients == [1, 3, 4] and results[1] == results[3] == results[4] == 3
    assert isinstance(results[2], ChannelError)
    assert model.rows == sum(shards[k].labels.size for k in (0, 2, 3))
