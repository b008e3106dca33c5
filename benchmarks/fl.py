"""Federated logistic regression on breast_cancer against scikit-learn on the pooled data.

Data: sklearn breast_cancer, 70/30 split with seed 0, standardised on the training rows. Modes:

* ``vertical``: secret-shared LR (:func:`train_vertical_ss`), the 30 columns split across
  ``--parties`` (2 or 3) in-process parties, labels at party 0, joint prediction on the test rows.
* ``horizontal``: FedAvg with secure aggregation over 3 clients splitting the training rows.

Each run is checked before its time is reported: AUC within 0.005 of the pooled baseline measured
in the same run, and weights within 1e-3 of the same algorithm in plaintext. ``seconds`` is the
median over ``--repeat`` runs of secure training plus (vertical) joint prediction; parties run as
threads over in-memory channels, so this measures the protocols, not a network.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_breast_cancer  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

import fl_gbdt
from privledger.protocols.fl.contribution import roc_auc
from privledger.protocols.fl.horizontal import (
    ClientData,
    FedAvg,
    Model,
    PlainAggregator,
    SecureAggregator,
    logistic_model,
    train_federated,
)
from privledger.protocols.fl.vertical import (
    PartyModel,
    VerticalConfig,
    predict_vertical,
    train_vertical_plaintext,
    train_vertical_ss,
)
from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.sharing import Party

F64 = npt.NDArray[np.float64]
AUC_TOLERANCE = 0.005
WEIGHT_TOLERANCE = 1e-3


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_seconds(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _data() -> tuple[F64, F64, F64, F64]:
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.3, random_state=0
    )
    scaler = StandardScaler().fit(x_train)
    return (
        np.asarray(scaler.transform(x_train), dtype=np.float64),
        np.asarray(scaler.transform(x_test), dtype=np.float64),
        np.asarray(y_train, dtype=np.float64),
        np.asarray(y_test, dtype=np.float64),
    )


def _baseline(x_train: F64, y_train: F64, x_test: F64, y_test: F64) -> tuple[float, float]:
    start = time.perf_counter()
    model = LogisticRegression(max_iter=10_000).fit(x_train, y_train)
    seconds = time.perf_counter() - start
    return roc_auc(model.predict_proba(x_test)[:, 1], y_test), seconds


def _check(auc: float, baseline: float, weight_gap: float) -> None:
    if abs(auc - baseline) > AUC_TOLERANCE:
        raise SystemExit(f"AUC {auc:.4f} is not within {AUC_TOLERANCE} of baseline {baseline:.4f}")
    if weight_gap > WEIGHT_TOLERANCE:
        raise SystemExit(f"weights differ from the plaintext run by {weight_gap:.2e}")


def bench_vertical(parties: int, epochs: int, repeat: int) -> dict[str, Any]:
    x_train, x_test, y_train, y_test = _data()
    baseline, baseline_seconds = _baseline(x_train, y_train, x_test, y_test)
    blocks = np.array_split(np.arange(x_train.shape[1]), parties)
    train = [x_train[:, block] for block in blocks]
    test = [x_test[:, block] for block in blocks]
    config = VerticalConfig(epochs=epochs, learning_rate=1.0)
    outcome: list[tuple[list[PartyModel], F64]] = []

    def secure() -> None:
        def role(party: Party) -> tuple[PartyModel, F64 | None]:
            labels = y_train if party.index == 0 else None
            model = train_vertical_ss(party, train[party.index], labels, config=config)
            return model, predict_vertical(party, test[party.index], model, requester=0)

        with local_mesh(parties, timeout=60) as mesh:
            results = mesh.run(role)
        probabilities = results[0][1]
        assert probabilities is not None
        outcome.append(([model for model, _ in results], probabilities))

    seconds = _median_seconds(secure, repeat)
    models, probabilities = outcome[-1]
    plain = train_vertical_plaintext(train, y_train, config=config)
    gap = max(
        max(
            float(np.max(np.abs(s.weights - p.weights))),
            abs((s.intercept or 0) - (p.intercept or 0)),
        )
        for s, p in zip(models, plain, strict=True)
    )
    auc = roc_auc(probabilities, y_test)
    _check(auc, baseline, gap)
    return {
        "bench": "fl",
        "mode": "vertical",
        "params": {
            "protocol": "secret-shared LR (dealer), piecewise-linear sigmoid",
            "parties": parties,
            "rows": int(y_train.size),
            "columns": [int(block.size) for block in blocks],
            "learning_rate": config.learning_rate,
            "frac_bits": config.frac_bits,
            "repeat": repeat,
            "transport": "in-process",
        },
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "auc": round(auc, 5),
        "baseline_auc": round(baseline, 5),
        "epochs": epochs,
        "max_weight_gap_vs_plaintext": gap,
        "peer": "sklearn LogisticRegression (pooled)",
        "peer_seconds": round(baseline_seconds, 4),
    }


@dataclass(frozen=True)
class Horizontal:
    """The horizontal setting: the training rows split among the clients, the test rows, the
    model and strategy, and the pooled baseline's AUC and time."""

    shards: list[ClientData]
    x_test: F64
    y_test: F64
    model: Model
    strategy: FedAvg
    baseline: float
    baseline_seconds: float


def horizontal_setting(clients: int) -> Horizontal:
    x_train, x_test, y_train, y_test = _data()
    baseline, baseline_seconds = _baseline(x_train, y_train, x_test, y_test)
    order = np.random.default_rng(0).permutation(y_train.size)
    shards = [ClientData(x_train[rows], y_train[rows]) for rows in np.array_split(order, clients)]
    model = logistic_model(1.0 / y_train.size)
    strategy = FedAvg(local_epochs=5, learning_rate=0.5)
    return Horizontal(shards, x_test, y_test, model, strategy, baseline, baseline_seconds)


def bench_horizontal(clients: int, rounds: int, repeat: int) -> dict[str, Any]:
    setting = horizontal_setting(clients)
    shards, model, strategy = setting.shards, setting.model, setting.strategy
    x_test, y_test = setting.x_test, setting.y_test
    baseline, baseline_seconds = setting.baseline, setting.baseline_seconds
    params: list[F64] = []

    def secure() -> None:
        run = train_federated(shards, model, strategy, SecureAggregator(), rounds=rounds)
        params.append(run.params)

    seconds = _median_seconds(secure, repeat)
    plain = train_federated(shards, model, strategy, PlainAggregator(), rounds=rounds).params
    gap = float(np.max(np.abs(params[-1] - plain)))
    auc = roc_auc(model.predict(params[-1], x_test), y_test)
    _check(auc, baseline, gap)
    return {
        "bench": "fl",
        "mode": "horizontal",
        "params": {
            "protocol": "FedAvg + SecAgg (pairwise X25519 masks, Shamir dropout recovery)",
            "clients": clients,
            "rounds": rounds,
            "local_epochs": strategy.local_epochs,
            "learning_rate": strategy.learning_rate,
            "clip_norm": strategy.clip_norm,
            "quant_frac_bits": 24,
            "repeat": repeat,
            "transport": "in-process",
        },
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "auc": round(auc, 5),
        "baseline_auc": round(baseline, 5),
        "epochs": rounds * strategy.local_epochs,
        "max_weight_gap_vs_plaintext": gap,
        "peer": "sklearn LogisticRegression (pooled)",
        "peer_seconds": round(baseline_seconds, 4),
    }


def main(argv: list[str]) -> int:
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--mode")
    first.add_argument("--dp", action="store_true")
    chosen = first.parse_known_args(argv)[0]
    if chosen.mode == "vertical-gbdt":  # own flags: fl_gbdt.py
        return fl_gbdt.main(argv)
    if chosen.dp:  # own flags: fl_dp.py, which builds on this module
        import fl_dp

        return fl_dp.main(argv)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--mode", choices=["vertical", "horizontal", "vertical-gbdt"], help="default: LR both"
    )
    parser.add_argument("--parties", type=int, default=3, help="vertical parties (2 or 3)")
    parser.add_argument("--epochs", type=int, default=200, help="vertical gradient steps")
    parser.add_argument("--clients", type=int, default=3, help="horizontal clients")
    parser.add_argument("--rounds", type=int, default=40, help="horizontal FedAvg rounds")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--dp", action="store_true", help="AUC against epsilon (fl_dp.py)")
    args = parser.parse_args(argv)
    results = []
    if args.mode in (None, "vertical"):
        results.append(bench_vertical(args.parties, args.epochs, args.repeat))
    if args.mode in (None, "horizontal"):
        results.append(bench_horizontal(args.clients, args.rounds, args.repeat))
    for result in results:
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
