"""Client-level differential privacy for horizontal FL: the budget, the noise, the training."""

from __future__ import annotations

import math
import threading
from functools import partial

import numpy as np
import pytest

from privledger.protocols.channel import channel_pair
from privledger.protocols.fl.dp import client_noise_std, epsilon, noise_for
from privledger.protocols.fl.federation import FederationConfig, run_aggregator, run_client
from privledger.protocols.fl.horizontal import ClientData, DpNoise, submission


def test_the_budget_grows_with_rounds_and_shrinks_with_noise() -> None:
    assert epsilon(2.0, 10, 1e-5) < epsilon(2.0, 40, 1e-5)
    assert epsilon(4.0, 10, 1e-5) < epsilon(2.0, 10, 1e-5)
    assert epsilon(2.0, 10, 1e-6) > epsilon(2.0, 10, 1e-5)
    # one Gaussian mechanism with z = 1 at delta = 1e-5: between the classical bound's
    # sqrt(2 ln(1.25/delta)) / z = 4.84 (valid for eps < 1 only) and RDP's known ~4-5
    assert 3.0 < epsilon(1.0, 1, 1e-5) < 6.0


@pytest.mark.parametrize("target", [0.5, 2.0, 8.0])
def test_the_noise_for_a_budget_spends_at_most_it(target: float) -> None:
    multiplier = noise_for(target, 20, 1e-5)
    assert epsilon(multiplier, 20, 1e-5) <= target
    assert epsilon(multiplier * 0.99, 20, 1e-5) > target * 0.99  # and not much less


def test_bad_parameters_are_refused() -> None:
    for args in ((0.0, 1, 1e-5), (1.0, 0, 1e-5), (1.0, 1, 0.0), (1.0, 1, 1.0)):
        with pytest.raises(ValueError):
            epsilon(*args)
    with pytest.raises(ValueError):
        noise_for(0.0, 10, 1e-5)
    with pytest.raises(ValueError):
        DpNoise(0.0, 1.0, 3)


def test_the_noise_of_threshold_clients_sums_to_the_mechanism_s() -> None:
    dp = DpNoise(noise_multiplier=2.0, clip_norm=0.5, threshold=3)
    zero = np.zeros(20_000)
    total = sum(dp.noisy(zero, dp.rng()) for _ in range(3))
    assert abs(float(np.std(total)) - 2.0 * 0.5) < 0.03
    assert client_noise_std(2.0, 0.5, 3) == pytest.approx(1.0 / math.sqrt(3))


def test_a_dp_submission_is_clipped_weighted_one_and_noisy() -> None:
    dp = DpNoise(noise_multiplier=1e-9, clip_norm=1.0, threshold=3)  # negligible noise
    update = np.array([3.0, 4.0])  # norm 5
    sent = submission(update, 100.0, 100.0, dp, dp.rng())
    np.testing.assert_allclose(sent, [0.6, 0.8, 1.0], atol=1e-6)  # clipped to 1, count 1
    plain = submission(update, 100.0, 100.0, None, None)
    np.testing.assert_allclose(plain, [300.0, 400.0, 100.0])  # rows-weighted, not clipped
    noisy = DpNoise(noise_multiplier=1.0, clip_norm=1.0, threshold=3)
    assert not np.allclose(submission(update, 100.0, 100.0, noisy, noisy.rng())[:2], [0.6, 0.8])


def _federate(config: FederationConfig, clients: list[ClientData]) -> np.ndarray:
    """A federation of ``clients`` over in-memory channels; the model's parameters."""
    links, threads = {}, []
    for index, data in enumerate(clients):
        server_end, client_end = channel_pair()
        links[index + 1] = server_end
        client = partial(
            run_client, client_end, index + 1, data, config, index=index, clients=3, timeout=10
        )
        threads.append(threading.Thread(target=client, daemon=True))
    for thread in threads:
        thread.start()
    model = run_aggregator(links, config, features=clients[0].features.shape[1], timeout=10)
    for thread in threads:
        thread.join(10)
    return model.params


def test_a_federation_with_dp_trains_a_noisy_but_useful_model() -> None:
    rng = np.random.default_rng(3)
    weights = rng.normal(size=4)
    clients = []
    for _ in range(3):
        x = rng.normal(size=(300, 4))
        clients.append(ClientData(x, (x @ weights + rng.normal(size=300) > 0).astype(float)))
    plain = _federate(FederationConfig(rounds=5), clients)
    private = FederationConfig(rounds=5, noise_multiplier=0.5, dp_clip_norm=1.0)
    first, second = _federate(private, clients), _federate(private, clients)
    assert not np.allclose(first, plain) and not np.allclose(first, second)  # fresh noise
    # the direction of the true weights survives modest noise
    direction, truth = (
        first[:-1] / np.linalg.norm(first[:-1]),
        plain[:-1] / np.linalg.norm(plain[:-1]),
    )
    assert float(direction @ truth) > 0.8
