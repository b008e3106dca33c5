"""Federated learning with differential privacy: AUC against epsilon.

``privledger bench fl --dp`` (horizontal, the default): the breast_cancer setting of ``bench fl
--mode horizontal`` (three clients, secure aggregation) trained without noise and then at each
``--epsilons`` value, every client adding its share of Gaussian noise (privledger.protocols.fl.dp)
with the noise multiplier that spends that epsilon at ``--delta`` over ``--rounds`` rounds (Rényi
accounting by dp-accounting). One JSON object per epsilon, beside the non-private AUC and the pooled
scikit-learn AUC of the same run; the AUC is the median over ``--repeat`` runs (the noise is fresh
every run). Checked before reporting: the non-private run reaches the pooled baseline within 0.005,
each noise multiplier spends at most its epsilon, and the noisy models differ from the non-private
one (the noise is there).

With three clients, client-level DP is expensive: the noise that hides one client is as large as
the sum of the clipped updates of all three. Deployments with many clients pay far less.

``privledger bench fl --mode vertical --dp``: the breast_cancer columns split across ``--parties``
(labels at party 0) and trained by secret-shared LR (privledger.protocols.fl.vertical) for
``--epochs`` full-batch epochs, without noise and then at each epsilon: rows clipped to
``--clip-norm`` (default 4, about the median row norm of the standardised data), each party adding
its share of the noise whose multiplier spends that epsilon at ``--delta`` over the epochs
(row-level DP, one row replaced). AUC of the trained model on the test rows (median over
``--repeat``), beside the non-private AUC and the pooled scikit-learn AUC of the same run, with
the same checks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fl import AUC_TOLERANCE, F64, _baseline, _data, _peak_rss_mb, horizontal_setting
from privledger.protocols.fl.contribution import roc_auc
from privledger.protocols.fl.dp import epsilon, noise_for
from privledger.protocols.fl.horizontal import DpNoise, SecureAggregator, train_federated
from privledger.protocols.fl.vertical import (
    PartyModel,
    VerticalConfig,
    VerticalDp,
    predict_vertical_plaintext,
    train_vertical_ss,
)
from privledger.protocols.mpc.dealer import local_mesh

CLIENTS = 3
THRESHOLD = CLIENTS // 2 + 1  # secure aggregation's t: the fewest clients a sum covers


Trained = tuple[F64, float]  # a model's parameters and its AUC on the test rows


def _auc_against_epsilon(
    epsilons: list[float],
    steps: int,
    delta: float,
    repeat: int,
    train: Callable[[float | None], Trained],
    describe: Callable[[float, float], dict[str, Any]],
    baseline: float,
) -> list[dict[str, Any]]:
    """One result per epsilon: ``train`` (given the noise multiplier, None for no noise) run
    ``repeat`` times with the multiplier that spends that epsilon over ``steps`` Gaussian
    mechanisms, beside the non-private run of the same data; ``describe`` adds the mode and
    parameters of a target epsilon and multiplier."""
    plain, plain_auc = train(None)
    if abs(plain_auc - baseline) > AUC_TOLERANCE:
        raise AssertionError(f"non-private AUC {plain_auc:.4f} vs pooled {baseline:.4f}")
    results = []
    for target in epsilons:
        multiplier = noise_for(target, steps, delta)
        spent = epsilon(multiplier, steps, delta)
        if spent > target:
            raise AssertionError(f"noise multiplier {multiplier} spends {spent} > {target}")
        aucs, seconds = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            params, auc = train(multiplier)
            seconds.append(time.perf_counter() - started)
            if np.allclose(params, plain, atol=1e-3):
                raise AssertionError("a private run equals the non-private one: no noise added")
            aucs.append(auc)
        results.append(
            {
                "bench": "fl",
                **describe(target, multiplier),
                "seconds": round(statistics.median(seconds), 3),
                "peak_rss_mb": round(_peak_rss_mb(), 1),
                "epsilon": round(spent, 4),
                "noise_multiplier": round(multiplier, 4),
                "auc": round(statistics.median(aucs), 5),
                "auc_runs": [round(auc, 4) for auc in aucs],
                "non_private_auc": round(plain_auc, 5),
                "baseline_auc": round(baseline, 5),
                "accountant": "RDP (dp-accounting)",
            }
        )
    return results


def bench_dp(
    epsilons: list[float], rounds: int, clip_norm: float, delta: float, repeat: int
) -> list[dict[str, Any]]:
    setting = horizontal_setting(CLIENTS)
    shards, model, strategy = setting.shards, setting.model, setting.strategy

    def train(multiplier: float | None) -> Trained:
        dp = None if multiplier is None else DpNoise(multiplier, clip_norm, THRESHOLD)
        aggregator = SecureAggregator(threshold=THRESHOLD)
        params = train_federated(shards, model, strategy, aggregator, rounds=rounds, dp=dp).params
        return params, roc_auc(model.predict(params, setting.x_test), setting.y_test)

    def describe(target: float, _: float) -> dict[str, Any]:
        return {
            "mode": "horizontal-dp",
            "params": {
                "protocol": "FedAvg + SecAgg, client-level Gaussian DP (distributed noise)",
                "clients": CLIENTS,
                "rounds": rounds,
                "local_epochs": strategy.local_epochs,
                "clip_norm": clip_norm,
                "delta": delta,
                "target_epsilon": target,
                "repeat": repeat,
                "transport": "in-process",
            },
            "epochs": rounds * strategy.local_epochs,
        }

    return _auc_against_epsilon(epsilons, rounds, delta, repeat, train, describe, setting.baseline)


def bench_vertical_dp(
    epsilons: list[float], epochs: int, clip_norm: float, delta: float, repeat: int, parties: int
) -> list[dict[str, Any]]:
    x_train, x_test, y_train, y_test = _data()
    baseline, _ = _baseline(x_train, y_train, x_test, y_test)
    blocks = np.array_split(np.arange(x_train.shape[1]), parties)
    train_parts = [x_train[:, block] for block in blocks]
    test_parts = [x_test[:, block] for block in blocks]

    def train(multiplier: float | None) -> Trained:
        dp = None if multiplier is None else VerticalDp(multiplier, clip_norm)
        config = VerticalConfig(epochs=epochs, dp=dp)
        with local_mesh(parties, timeout=60) as mesh:
            models: list[PartyModel] = mesh.run(
                lambda party: train_vertical_ss(
                    party,
                    train_parts[party.index],
                    y_train if party.index == 0 else None,
                    config=config,
                )
            )
        weights = np.concatenate([np.append(m.weights, m.intercept or ()) for m in models])
        return weights, roc_auc(predict_vertical_plaintext(test_parts, models), y_test)

    def describe(target: float, multiplier: float) -> dict[str, Any]:
        return {
            "mode": "vertical-dp",
            "params": {
                "protocol": "secret-shared LR, row-level Gaussian DP (noise shared by parties)",
                "parties": parties,
                "rows": int(y_train.size),
                "epochs": epochs,
                "clip_norm": clip_norm,
                "delta": delta,
                "target_epsilon": target,
                "repeat": repeat,
                "transport": "in-process",
            },
            "noise_std_per_party": round(
                VerticalDp(multiplier, clip_norm).party_noise_std(parties), 3
            ),
        }

    return _auc_against_epsilon(epsilons, epochs, delta, repeat, train, describe, baseline)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dp", action="store_true", help="this benchmark (bench fl --dp)")
    parser.add_argument(
        "--mode", choices=["horizontal", "vertical"], default="horizontal", help="FL kind"
    )
    parser.add_argument(
        "--epsilons", type=float, nargs="+", default=[1.0, 4.0, 16.0], help="budgets to train at"
    )
    parser.add_argument("--rounds", type=int, default=10, help="horizontal: FedAvg rounds")
    parser.add_argument("--epochs", type=int, default=50, help="vertical: gradient epochs")
    parser.add_argument("--parties", type=int, default=3, help="vertical parties (2 or 3)")
    parser.add_argument(
        "--clip-norm", type=float, help="L2 bound of an update (default 0.5) or a row (4)"
    )
    parser.add_argument("--delta", type=float, default=1e-5, help="the budget's delta")
    parser.add_argument("--repeat", type=int, default=5, help="runs per epsilon (median AUC)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    if args.mode == "vertical":
        results = bench_vertical_dp(
            args.epsilons, args.epochs, args.clip_norm or 4.0, args.delta, args.repeat, args.parties
        )
    else:
        results = bench_dp(
            args.epsilons, args.rounds, args.clip_norm or 0.5, args.delta, args.repeat
        )
    for result in results:
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
