"""Horizontal federated learning between processes: FedAvg / FedProx rounds whose updates are
summed by secure aggregation (:mod:`.secagg`) over authenticated channels.

Topology is a star, as in Bonawitz et al.: the aggregator (the task's requester) holds one channel
per client and clients never talk to each other -- the encrypted Shamir shares of the SecAgg key
round travel through the aggregator, which cannot read them. Every link is strictly turn-based, so
each channel's transcript hash is the same on both ends.

One task:

0. *Standardisation.* Every client secure-sums ``(sum_k x, n_k)``; the aggregator sends back the
   pooled mean and row count ``N``; every client secure-sums ``sum_k (x - mean)^2`` (two passes
   avoid the cancellation of ``E[x^2] - mean^2``); the aggregator sends back the pooled scale and
   every client standardises its rows with it. Both sums are quantised with
   :data:`STATS_FRAC_BITS` fractional bits; a client refuses values whose sum could wrap
   (:func:`.secagg.check_range`). The model's L2 penalty is ``1 / N`` (scikit-learn's ``C = 1``).
1. *Rounds* ``r = 0 .. R-1``: the aggregator sends the global parameters ``w``; each client trains
   locally from ``w`` (:func:`.horizontal.local_train`, mini-batch order seeded by
   ``(seed, r, client index)``), clips its update to ``clip_norm`` and contributes
   ``(n_k * delta_k, n_k)`` to a secure sum quantised with 2^24 steps; the aggregator moves to
   ``w + sum(n_k delta_k) / sum(n_k)`` (:func:`.horizontal.weighted_mean_update`).
2. The aggregator sends ``done``; the model (``w``, mean, scale) is its output.

Messages on a link (client ``C``, aggregator ``A``)::

    per secure sum:  C->A keys  A->C roster  C->A shares  A->C inbox  C->A masked vector
                     A->C survivors  C->A unmask shares
    task:            [sum of x, n]  A->C mean, N  [sum of (x - mean)^2]  A->C scale
                     R x ( A->C w  [secure sum of the update] )   A->C done

Security model: semi-honest aggregator and clients, as in :mod:`.secagg` (threshold ``t`` =
majority of the clients, at least :data:`MIN_CONTRIBUTORS` = 3: the aggregator plus fewer than
``t`` colluding clients learn nothing about an honest client's rows or update beyond the sums
below). Every sum covers at least three clients' vectors: the aggregator refuses a task with
fewer than three clients, every client refuses to join one, and a secure sum with fewer than
``t`` survivors fails (the clients refuse to unmask it). With two contributors a sum is no
protection: the task's requester aggregates and may train its own rows as one of the clients
(the node does), and then subtracts its own update; with a non-contributing aggregator each
client reads the other's update from the next global model. Three is the least that leaves
every party at least two other contributors in each sum (``tests/privacy/test_horizontal_fl.py``).
Leakage -- what each side learns beyond its own data:

- aggregator: the pooled row count, per-column sums and centred sums of squares (so the pooled
  mean and variance), and in each round the sample-weighted sum of the updates of the clients
  still in; which clients dropped out.
- client: the pooled mean, scale and row count, the number of clients, and the global parameters
  of every round (as in every FedAvg deployment -- a model inversion risk the data owner accepts
  by granting FL use).

Dropouts: a client whose link fails (closed, timed out, unreachable) is dropped for the rest of
the task; a round still aggregates exactly over the survivors while at least ``t`` remain, and
the task fails with :class:`FederationError` otherwise. The aggregator gives all clients of a
phase ``timeout`` together, and a client waits :data:`CLIENT_WAIT_FACTOR` times as long for the
aggregator, so the clients that stay outwait the aggregator's wait for one that dropped.
Clipping bounds every client's influence on a round. Differential privacy is an option
(``FederationConfig.noise_multiplier``): each client then adds its share of Gaussian noise to
every update, with the budget and its limits as :mod:`.dp` states; without it no noise is added
(say so before releasing a model publicly).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from privledger.protocols.channel import Channel, ChannelError
from privledger.protocols.fl.horizontal import (
    F64,
    ClientData,
    DpNoise,
    Model,
    local_train,
    logistic_model,
    logistic_predict,
    mlp_model,
    mlp_predict,
    submission,
    weighted_mean_update,
)
from privledger.protocols.fl.secagg import (
    QUANT_FRAC_BITS,
    AdvertisedKeys,
    SecAggClient,
    SecAggError,
    SecAggServer,
    UnmaskShares,
    check_range,
    dequantise,
    quantise,
)

logger = logging.getLogger(__name__)

STATS_FRAC_BITS: Final = 16
MLP_HIDDEN: Final = 8
ModelKind = Literal["lr", "mlp"]
T = TypeVar("T")


MIN_CONTRIBUTORS: Final = 3
# A client waits for the aggregator this many times the aggregator's wait for all clients of a
# phase: the aggregator's answer may come only after it has waited out a client that dropped.
CLIENT_WAIT_FACTOR: Final = 2.5
MIN_WAIT_S: Final = 0.05  # for a client's message once the phase's time is up: it is queued


class FederationError(ChannelError):
    """The federation cannot go on: too few clients left, or a malformed message."""


@dataclass(frozen=True)
class FederationConfig:
    """What both sides agree on before the task starts (it is part of the task's spec)."""

    model: ModelKind = "lr"
    rounds: int = 40
    local_epochs: int = 5
    learning_rate: float = 0.5
    proximal_mu: float = 0.0  # > 0: FedProx
    clip_norm: float = 100.0
    seed: int = 0
    noise_multiplier: float = 0.0  # > 0: differential privacy on the updates (see .dp)
    dp_clip_norm: float = 1.0  # the norm each client's update is clipped to under DP

    def build(self, rows: int) -> Model:
        l2 = 1.0 / rows
        return logistic_model(l2) if self.model == "lr" else mlp_model(MLP_HIDDEN, l2)


@dataclass(frozen=True)
class FederatedModel:
    """The aggregator's output: parameters over standardised columns, and the standardisation."""

    model: ModelKind
    params: F64
    mean: F64
    scale: F64
    rows: int
    rounds: int
    clients: list[int]  # those still in at the end

    def predict(self, features: F64) -> F64:
        standard = (features - self.mean) / self.scale
        if self.model == "lr":
            return logistic_predict(self.params, standard)
        return mlp_predict(self.params, standard, MLP_HIDDEN)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "rows": self.rows,
            "rounds": self.rounds,
            "clients": self.clients,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FederatedModel:
        model = data["model"]
        if model not in ("lr", "mlp"):
            raise ValueError(f"unknown model {model!r}")
        return cls(
            model,
            np.asarray(data["params"], dtype=np.float64),
            np.asarray(data["mean"], dtype=np.float64),
            np.asarray(data["scale"], dtype=np.float64),
            int(data["rows"]),
            int(data["rounds"]),
            [int(client) for client in data["clients"]],
        )


def threshold(clients: int) -> int:
    """SecAgg's t: a majority of the clients, at least :data:`MIN_CONTRIBUTORS` -- no sum is
    ever taken over fewer vectors, dropouts included."""
    return max(MIN_CONTRIBUTORS, clients // 2 + 1)


def _check_clients(clients: int) -> None:
    if clients < MIN_CONTRIBUTORS:
        raise FederationError(
            f"horizontal FL needs at least {MIN_CONTRIBUTORS} clients, not {clients}: with two, "
            "whoever holds one update (the other client, or an aggregator that trains its own "
            "rows) reads the other's exactly from the sum"
        )


# --- the aggregator -------------------------------------------------------------------------


def run_aggregator(
    links: Mapping[int, Channel], config: FederationConfig, *, features: int, timeout: float
) -> FederatedModel:
    """Drive the task over one channel per client (keyed by client id, > 0)."""
    _check_clients(len(links))
    alive = dict(sorted(links.items()))
    t = threshold(len(alive))
    first = dequantise(
        _secure_sum(alive, round_id=-2, length=features + 1, t=t, timeout=timeout), STATS_FRAC_BITS
    )
    rows = round(float(first[-1]))
    if rows < 2:
        raise FederationError("fewer than 2 rows in the federation")
    mean = first[:features] / rows
    _broadcast(alive, {"mean": mean.tolist(), "rows": rows})
    squares = dequantise(
        _secure_sum(alive, round_id=-1, length=features, t=t, timeout=timeout), STATS_FRAC_BITS
    )
    scale = np.sqrt(np.maximum(squares / rows, 0.0))
    scale[scale < 1e-12] = 1.0
    _broadcast(alive, {"scale": scale.tolist()})
    model = config.build(rows)
    params = model.init(features, np.random.default_rng(config.seed))
    for round_id in range(config.rounds):
        _broadcast(alive, {"round": round_id, "params": params.tolist()})
        total = dequantise(
            _secure_sum(alive, round_id=round_id, length=params.size + 1, t=t, timeout=timeout)
        )
        params = params + weighted_mean_update(total[:-1], float(total[-1]))
    _broadcast(alive, {"done": True})
    logger.info("federation: %d rounds, %d of %d clients", config.rounds, len(alive), len(links))
    return FederatedModel(config.model, params, mean, scale, rows, config.rounds, sorted(alive))


def _broadcast(alive: dict[int, Channel], message: Mapping[str, Any]) -> None:
    payload = json.dumps(message).encode()
    for client, channel in list(alive.items()):
        try:
            channel.send(payload)
        except ChannelError as exc:
            _drop(alive, client, exc)


def _drop(alive: dict[int, Channel], client: int, reason: Exception) -> None:
    logger.warning("federation: client %d dropped out (%s)", client, reason)
    alive.pop(client).close()


def _secure_sum(
    alive: dict[int, Channel], *, round_id: int, length: int, t: int, timeout: float
) -> npt.NDArray[np.uint64]:
    """One SecAgg round with the clients in ``alive`` (dropped ones are removed from it)."""
    server = SecAggServer(round_id=round_id, vector_length=length, threshold=t)
    adverts = _gather(alive, timeout, _advert)
    try:
        roster = server.collect_keys(list(adverts.values()))
        _broadcast(
            alive, {str(c): [k.cipher_public.hex(), k.mask_public.hex()] for c, k in roster.items()}
        )
        outboxes = _gather(alive, timeout, lambda _c, data: _hex_map(json.loads(data)))
        inboxes = server.route_shares(outboxes)
        for client, channel in list(alive.items()):
            inbox = {
                str(sender): message.hex() for sender, message in inboxes.get(client, {}).items()
            }
            _send(alive, client, channel, json.dumps(inbox).encode())
        masked = _gather(alive, timeout, lambda _c, data: np.frombuffer(data, dtype="<u8"))
        for client, vector in masked.items():
            server.collect_masked(client, vector.astype(np.uint64))
        survivors = server.survivors()
        _broadcast({c: alive[c] for c in survivors if c in alive}, {"survivors": survivors})
        responses = _gather(
            {c: alive[c] for c in survivors if c in alive},
            timeout,
            lambda client, data: _unmask_shares(client, json.loads(data)),
        )
        return server.aggregate(list(responses.values()))
    except (SecAggError, ValueError, KeyError, TypeError) as exc:
        raise FederationError(f"secure aggregation round {round_id}: {exc}") from exc


def _send(alive: dict[int, Channel], client: int, channel: Channel, payload: bytes) -> None:
    try:
        channel.send(payload)
    except ChannelError as exc:
        _drop(alive, client, exc)


def _gather(
    alive: dict[int, Channel], timeout: float, parse: Callable[[int, bytes], T]
) -> dict[int, T]:
    """One message from every client still in, within ``timeout`` for them all; a client that
    fails to answer by then, or answers with a malformed message, is dropped."""
    received = {}
    deadline = time.monotonic() + timeout
    for client, channel in list(alive.items()):
        try:
            left = max(MIN_WAIT_S, deadline - time.monotonic())  # the others' already arrived
            received[client] = parse(client, channel.recv(left))
        except (ChannelError, ValueError, KeyError, TypeError) as exc:
            _drop(alive, client, exc)
    return received


def _advert(client: int, data: bytes) -> AdvertisedKeys:
    message = json.loads(data)
    if int(message["client"]) != client:
        raise ValueError(f"client {client} advertised keys as {message['client']}")
    return AdvertisedKeys(client, bytes.fromhex(message["cipher"]), bytes.fromhex(message["mask"]))


def _hex_map(message: Mapping[str, str]) -> dict[int, bytes]:
    return {int(peer): bytes.fromhex(value) for peer, value in message.items()}


def _unmask_shares(client: int, message: Mapping[str, Mapping[str, str]]) -> UnmaskShares:
    return UnmaskShares(
        client,
        {int(peer): int(share, 16) for peer, share in message["seed"].items()},
        {int(peer): int(share, 16) for peer, share in message["key"].items()},
    )


# --- a client -------------------------------------------------------------------------------


def run_client(
    channel: Channel,
    client: int,
    data: ClientData,
    config: FederationConfig,
    *,
    index: int,
    clients: int,
    timeout: float,
) -> int:
    """Take part until the aggregator says ``done``; returns the rounds this client trained.

    ``index`` is this client's position among the task's clients (it seeds the batch order).
    """
    _check_clients(clients)  # the client refuses too: it is the party the rule protects
    t = threshold(clients)
    timeout *= CLIENT_WAIT_FACTOR  # the aggregator may be waiting out a client that dropped
    x, y = data.features, data.labels
    features = x.shape[1]
    counted = np.concatenate([x.sum(axis=0), [float(y.size)]])
    _contribute(channel, client, counted, STATS_FRAC_BITS, clients, -2, t, timeout)
    pooled = _recv_json(channel, timeout)
    mean = np.asarray(pooled["mean"], dtype=np.float64)
    if mean.shape != (features,):
        raise FederationError("malformed pooled mean from the aggregator")
    squares = ((x - mean) ** 2).sum(axis=0)
    _contribute(channel, client, squares, STATS_FRAC_BITS, clients, -1, t, timeout)
    scale = np.asarray(_recv_json(channel, timeout)["scale"], dtype=np.float64)
    if scale.shape != (features,) or np.any(scale <= 0):
        raise FederationError("malformed pooled scale from the aggregator")
    standard = (x - mean) / scale
    model = config.build(int(pooled["rows"]))
    dp = (
        DpNoise(config.noise_multiplier, config.dp_clip_norm, t)
        if config.noise_multiplier > 0
        else None
    )
    noise = dp.rng() if dp is not None else None
    rounds = 0
    while True:
        message = _recv_json(channel, timeout)
        if message.get("done"):
            return rounds
        round_id = int(message["round"])
        params = np.asarray(message["params"], dtype=np.float64)
        local = local_train(
            model,
            params,
            standard,
            y,
            epochs=config.local_epochs,
            learning_rate=config.learning_rate,
            batch_size=None,
            proximal_mu=config.proximal_mu,
            rng=np.random.default_rng((config.seed, round_id, index)),
        )
        update = submission(local - params, float(y.size), config.clip_norm, dp, noise)
        _contribute(channel, client, update, QUANT_FRAC_BITS, clients, round_id, t, timeout)
        rounds += 1


def _contribute(
    channel: Channel,
    client: int,
    vector: F64,
    frac_bits: int,
    clients: int,
    round_id: int,
    t: int,
    timeout: float,
) -> None:
    """This client's side of one secure sum."""
    check_range(vector, clients, frac_bits)
    quantised = quantise(vector, frac_bits)
    secagg = SecAggClient(client, round_id=round_id, vector_length=quantised.size, threshold=t)
    keys = secagg.advertise_keys()
    channel.send(
        json.dumps(
            {"client": client, "cipher": keys.cipher_public.hex(), "mask": keys.mask_public.hex()}
        ).encode()
    )
    try:
        roster = {
            int(peer): AdvertisedKeys(int(peer), bytes.fromhex(c), bytes.fromhex(m))
            for peer, (c, m) in _recv_json(channel, timeout).items()
        }
        outbox = secagg.share_keys(roster)
        channel.send(json.dumps({str(p): m.hex() for p, m in outbox.items()}).encode())
        inbox = _hex_map(_recv_json(channel, timeout))
        channel.send(secagg.masked_input(quantised, inbox).astype("<u8").tobytes())
        survivors = [int(c) for c in _recv_json(channel, timeout)["survivors"]]
        shares = secagg.unmask(survivors)
    except (SecAggError, ValueError, KeyError, TypeError) as exc:
        raise FederationError(f"secure aggregation round {round_id}: {exc}") from exc
    # the unmask shares give the aggregator the sum: the pooled statistics (per-column mean and
    # variance, a joint-statistics result of their own), then each round's model
    channel.delivering()
    channel.send(
        json.dumps(
            {
                "seed": {str(p): hex(s) for p, s in shares.self_mask_shares.items()},
                "key": {str(p): hex(s) for p, s in shares.mask_key_shares.items()},
            }
        ).encode()
    )


def _recv_json(channel: Channel, timeout: float) -> Any:
    try:
        return json.loads(channel.recv(timeout))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FederationError(f"malformed message: {exc}") from exc
