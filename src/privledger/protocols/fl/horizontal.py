"""Horizontal federated learning: clients hold different rows with the same columns.

The maths are pure numpy functions on flat float64 parameter vectors -- logistic regression and
a one-hidden-layer MLP (tanh), their loss and gradient, local (mini-batch) gradient descent with
an optional FedProx proximal term, and the sample-weighted average. Orchestration sits behind two
small abstract classes, as in Flower: a :class:`Strategy` says how clients train and how the
server combines their updates (:class:`FedAvg`, :class:`FedProx`), an :class:`Aggregator` says how
the server obtains the sum of the updates (:class:`PlainAggregator` sees each update,
:class:`SecureAggregator` sees only pairwise-masked vectors, see :mod:`.secagg`).

One round of :func:`train_federated`: every client starts from the global parameters ``w``,
trains locally, clips its update ``delta_k = w_k - w`` to the L2 norm ``clip_norm`` (``None``
turns clipping off) and submits ``(n_k * delta_k, n_k)``; the server learns the sums and moves to
``w + sum(n_k delta_k) / sum(n_k)`` -- FedAvg weighted by sample count, over the clients that did
not drop out. Under :class:`SecureAggregator` the submitted vector is quantised with
``2^24`` steps (:data:`.secagg.QUANT_FRAC_BITS`) into Z_2^64, so the server learns only the sum
of the counts and of the weighted updates, each to within ``2^-25`` per client and coordinate.

:func:`train_federated` is the in-process reference (tests, benchmarks). Between nodes, FL runs
through :mod:`.federation`, which refuses any secure sum over fewer than three contributors (see
its security model and ``docs/security-model.md``).

Local randomness (mini-batch order) comes from ``numpy.random.default_rng((seed, round,
client))``, so a plaintext and a secure run of the same configuration follow the same path and
differ only by quantisation.
"""

from __future__ import annotations

import abc
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from privledger.protocols.fl.dp import client_noise_std
from privledger.protocols.fl.secagg import (
    QUANT_FRAC_BITS,
    check_range,
    dequantise,
    quantise,
    secure_sum,
)

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
LossGrad = Callable[[F64, F64, F64], tuple[float, F64]]
Predict = Callable[[F64, F64], F64]

_MAX_COUNT: Final = 1 << 24  # samples per client, so n_k * delta fits the quantised range


# --- models: pure functions -----------------------------------------------------------------


def sigmoid(z: F64) -> F64:
    """The logistic function, without overflow for large ``|z|``."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def _log_loss(z: F64, y: F64) -> float:
    """Mean binary cross-entropy of logits ``z`` against labels ``y`` in {0, 1}."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def logistic_loss_grad(params: F64, x: F64, y: F64, l2: float) -> tuple[float, F64]:
    """Loss and gradient of L2-regularised logistic regression; ``params = [w..., bias]``.

    ``loss = mean(log(1 + e^z) - y z) + l2/2 |w|^2`` with ``z = x w + bias``; the bias is not
    penalised (as in scikit-learn, where ``l2 = 1 / (C n)``).
    """
    weights, bias = params[:-1], params[-1]
    z = x @ weights + bias
    residual = (sigmoid(z) - y) / y.size
    grad = np.empty_like(params)
    grad[:-1] = x.T @ residual + l2 * weights
    grad[-1] = residual.sum()
    return _log_loss(z, y) + 0.5 * l2 * float(weights @ weights), grad


def logistic_predict(params: F64, x: F64) -> F64:
    return sigmoid(x @ params[:-1] + params[-1])


def mlp_init(features: int, hidden: int, rng: np.random.Generator) -> F64:
    """Glorot-uniform weights and zero biases, flat: ``[W1 (d x h), b1 (h), w2 (h), b2]``."""
    bound_1 = np.sqrt(6.0 / (features + hidden))
    bound_2 = np.sqrt(6.0 / (hidden + 1))
    return np.concatenate(
        [
            rng.uniform(-bound_1, bound_1, features * hidden),
            np.zeros(hidden),
            rng.uniform(-bound_2, bound_2, hidden),
            np.zeros(1),
        ]
    )


def _mlp_unpack(params: F64, features: int, hidden: int) -> tuple[F64, F64, F64, float]:
    cut = features * hidden
    if params.size != cut + 2 * hidden + 1:
        raise ValueError(f"MLP parameters of size {params.size} do not fit {features}x{hidden}")
    w1 = params[:cut].reshape(features, hidden)
    return w1, params[cut : cut + hidden], params[cut + hidden : cut + 2 * hidden], params[-1]


def mlp_loss_grad(params: F64, x: F64, y: F64, hidden: int, l2: float) -> tuple[float, F64]:
    """Loss and gradient of a one-hidden-layer tanh MLP with a logistic output."""
    w1, b1, w2, b2 = _mlp_unpack(params, x.shape[1], hidden)
    activation = np.tanh(x @ w1 + b1)
    z = activation @ w2 + b2
    dz = (sigmoid(z) - y) / y.size
    d_hidden = np.outer(dz, w2) * (1.0 - activation**2)
    grad = np.concatenate(
        [
            (x.T @ d_hidden + l2 * w1).reshape(-1),
            d_hidden.sum(axis=0),
            activation.T @ dz + l2 * w2,
            [dz.sum()],
        ]
    )
    penalty = 0.5 * l2 * (float(np.sum(w1 * w1)) + float(w2 @ w2))
    return _log_loss(z, y) + penalty, grad


def mlp_predict(params: F64, x: F64, hidden: int) -> F64:
    w1, b1, w2, b2 = _mlp_unpack(params, x.shape[1], hidden)
    return sigmoid(np.tanh(x @ w1 + b1) @ w2 + b2)


@dataclass(frozen=True)
class Model:
    """A model family as pure functions: initial parameters, loss and gradient, prediction."""

    name: str
    init: Callable[[int, np.random.Generator], F64]
    loss_grad: LossGrad
    predict: Predict


def logistic_model(l2: float) -> Model:
    """Logistic regression, zero-initialised; ``l2 = 1 / (C n)`` matches scikit-learn's ``C``."""
    return Model(
        "logistic",
        lambda features, _rng: np.zeros(features + 1),
        lambda params, x, y: logistic_loss_grad(params, x, y, l2),
        logistic_predict,
    )


def mlp_model(hidden: int, l2: float) -> Model:
    """One hidden layer of ``hidden`` tanh units; Glorot-initialised from the run's seed."""
    return Model(
        f"mlp-{hidden}",
        lambda features, rng: mlp_init(features, hidden, rng),
        lambda params, x, y: mlp_loss_grad(params, x, y, hidden, l2),
        lambda params, x: mlp_predict(params, x, hidden),
    )


def local_train(
    model: Model,
    params: F64,
    x: F64,
    y: F64,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int | None,
    proximal_mu: float,
    rng: np.random.Generator,
) -> F64:
    """Mini-batch gradient descent from ``params`` (full batch when ``batch_size`` is None).

    FedProx adds ``mu/2 |w - w_global|^2`` to the local objective, pulling the client's
    parameters towards the global ones it started from; ``proximal_mu = 0`` is FedAvg.
    """
    anchor = params
    current = params.copy()
    rows = y.size
    step = rows if batch_size is None else batch_size
    for _ in range(epochs):
        order = np.arange(rows) if batch_size is None else rng.permutation(rows)
        for start in range(0, rows, step):
            batch = order[start : start + step]
            _, grad = model.loss_grad(current, x[batch], y[batch])
            if proximal_mu:
                grad = grad + proximal_mu * (current - anchor)
            current = current - learning_rate * grad
    return current


def clip_by_norm(update: F64, clip_norm: float | None) -> F64:
    """``update`` scaled down to L2 norm ``clip_norm`` if it is longer."""
    if clip_norm is None:
        return update
    norm = float(np.linalg.norm(update))
    return update if norm <= clip_norm else update * (clip_norm / norm)


@dataclass(frozen=True)
class DpNoise:
    """Client-level differential privacy (:mod:`.dp`): each client submits its update clipped
    to ``clip_norm`` with weight 1 plus Gaussian noise, so that any ``threshold`` clients' noise
    sums to standard deviation ``noise_multiplier * clip_norm``."""

    noise_multiplier: float
    clip_norm: float
    threshold: int

    def __post_init__(self) -> None:
        if self.noise_multiplier <= 0 or self.clip_norm <= 0 or self.threshold < 1:
            raise ValueError("need noise_multiplier > 0, clip_norm > 0 and threshold >= 1")

    def rng(self) -> np.random.Generator:
        """A noise source seeded from the operating system's CSPRNG, one per client."""
        return np.random.Generator(np.random.PCG64(secrets.randbits(128)))

    def noisy(self, update: F64, rng: np.random.Generator) -> F64:
        std = client_noise_std(self.noise_multiplier, self.clip_norm, self.threshold)
        clipped = clip_by_norm(update, self.clip_norm)
        return np.asarray(clipped + rng.normal(0.0, std, clipped.shape), dtype=np.float64)


def submission(
    update: F64,
    count: float,
    clip_norm: float | None,
    dp: DpNoise | None,
    noise: np.random.Generator | None,
) -> F64:
    """What a client submits to the secure sum: ``(n_k * clip(delta_k), n_k)``, or under DP
    ``(clip(delta_k) + noise, 1)``."""
    if dp is None or noise is None:
        return np.concatenate([count * clip_by_norm(update, clip_norm), [count]])
    return np.concatenate([dp.noisy(update, noise), [1.0]])


def weighted_mean_update(update_sum: F64, total_weight: float) -> F64:
    """FedAvg's server step: the sample-weighted mean of the client updates."""
    if total_weight <= 0:
        raise ValueError("no samples in the aggregate")
    return update_sum / total_weight


# --- orchestration --------------------------------------------------------------------------


@dataclass(frozen=True)
class FitInstructions:
    """What the server asks every client to do in one round."""

    epochs: int
    learning_rate: float
    batch_size: int | None
    proximal_mu: float = 0.0


class Strategy(abc.ABC):
    """How clients train in a round and how the server turns the aggregate into parameters."""

    clip_norm: float | None

    @abc.abstractmethod
    def configure_fit(self, round_id: int) -> FitInstructions:
        """The local training instructions for ``round_id``."""

    @abc.abstractmethod
    def aggregate_fit(self, global_params: F64, update_sum: F64, total_weight: float) -> F64:
        """New global parameters from the weighted sum of client updates."""


@dataclass
class FedAvg(Strategy):
    """McMahan et al. (2017): local gradient descent, sample-weighted mean of the updates."""

    local_epochs: int = 1
    learning_rate: float = 0.5
    batch_size: int | None = None
    clip_norm: float | None = 100.0

    def configure_fit(self, round_id: int) -> FitInstructions:
        return FitInstructions(self.local_epochs, self.learning_rate, self.batch_size)

    def aggregate_fit(self, global_params: F64, update_sum: F64, total_weight: float) -> F64:
        return global_params + weighted_mean_update(update_sum, total_weight)


@dataclass
class FedProx(FedAvg):
    """Li et al. (2020): FedAvg with the proximal term ``mu/2 |w - w_global|^2`` locally."""

    proximal_mu: float = 0.01

    def configure_fit(self, round_id: int) -> FitInstructions:
        return FitInstructions(
            self.local_epochs, self.learning_rate, self.batch_size, self.proximal_mu
        )


class Aggregator(abc.ABC):
    """How the server learns the sum of the clients' submitted vectors."""

    @abc.abstractmethod
    def sum_vectors(
        self, vectors: Mapping[int, F64], *, round_id: int, dropped: frozenset[int]
    ) -> F64:
        """The sum over clients not in ``dropped``; the dropped ones vanish mid-round."""


class PlainAggregator(Aggregator):
    """The server sees every update in the clear (the reference run)."""

    def sum_vectors(
        self, vectors: Mapping[int, F64], *, round_id: int, dropped: frozenset[int]
    ) -> F64:
        kept = [vector for client, vector in sorted(vectors.items()) if client not in dropped]
        return np.asarray(np.sum(kept, axis=0), dtype=np.float64)


@dataclass
class SecureAggregator(Aggregator):
    """Secure aggregation (:mod:`.secagg`) of quantised vectors; ``threshold`` t-of-n."""

    threshold: int | None = None
    frac_bits: int = QUANT_FRAC_BITS
    server_views: list[dict[int, npt.NDArray[np.uint64]]] = field(default_factory=list)
    keep_views: bool = False

    def sum_vectors(
        self, vectors: Mapping[int, F64], *, round_id: int, dropped: frozenset[int]
    ) -> F64:
        for vector in vectors.values():
            check_range(vector, len(vectors), self.frac_bits)
        quantised = {client: quantise(vector, self.frac_bits) for client, vector in vectors.items()}
        total, view = secure_sum(
            quantised, round_id=round_id, threshold=self.threshold, drop_before_input=dropped
        )
        if self.keep_views:
            self.server_views.append(view)
        return dequantise(total, self.frac_bits)


@dataclass(frozen=True)
class ClientData:
    features: F64
    labels: F64

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.labels.shape != (self.features.shape[0],):
            raise ValueError("need features (n x d) and n labels")
        if not 0 < self.labels.size <= _MAX_COUNT:
            raise ValueError(f"a client needs 1 .. {_MAX_COUNT} rows")


@dataclass
class FederatedRun:
    params: F64
    rounds: int


def train_federated(
    clients: Sequence[ClientData],
    model: Model,
    strategy: Strategy,
    aggregator: Aggregator,
    *,
    rounds: int,
    seed: int = 0,
    dropouts: Mapping[int, frozenset[int]] | None = None,
    dp: DpNoise | None = None,
) -> FederatedRun:
    """Run ``rounds`` rounds; ``dropouts[r]`` lists the clients that vanish in round ``r``;
    with ``dp`` every client adds its share of the noise (:class:`DpNoise`)."""
    if not clients:
        raise ValueError("no clients")
    features = clients[0].features.shape[1]
    if any(client.features.shape[1] != features for client in clients):
        raise ValueError("horizontal clients must share their columns")
    params = model.init(features, np.random.default_rng(seed))
    run = FederatedRun(params, rounds)
    noise = [dp.rng() if dp is not None else None for _ in clients]
    for round_id in range(rounds):
        instructions = strategy.configure_fit(round_id)
        submissions = {}
        for index, client in enumerate(clients):
            local = local_train(
                model,
                params,
                client.features,
                client.labels,
                epochs=instructions.epochs,
                learning_rate=instructions.learning_rate,
                batch_size=instructions.batch_size,
                proximal_mu=instructions.proximal_mu,
                rng=np.random.default_rng((seed, round_id, index)),
            )
            count = float(client.labels.size)
            submissions[index] = submission(
                local - params, count, strategy.clip_norm, dp, noise[index]
            )
        dropped = (dropouts or {}).get(round_id, frozenset())
        total = aggregator.sum_vectors(submissions, round_id=round_id, dropped=dropped)
        params = strategy.aggregate_fit(params, total[:-1], float(total[-1]))
    run.params = params
    logger.info("federated %s: %d rounds, %d clients", model.name, rounds, len(clients))
    return run
