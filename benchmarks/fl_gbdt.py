"""Vertical SecureBoost (protocols/fl/gbdt.py) against LightGBM on the pooled data, same run.

Two parties in two processes (the label holder here, the feature owner in a child process,
connected by a pipe): training, joint prediction of the test rows and export by consent. Data:
``breast_cancer`` (sklearn, 70/30 split with seed 0, 12 + 18 columns) and ``synthetic``
(``make_classification``, ``--rows`` training rows + 20% test rows, 30 columns split 15 + 15,
seed 0). Before a time is reported the run is checked: the joint predictions equal the exported
model's (merged plaintext and LightGBM text loaded by ``lightgbm.Booster``) to 1e-9, and the
AUC is within 0.01 of LightGBM trained on the pooled columns with the same parameters.
``seconds`` is training plus joint prediction, wall clock at the label holder; ``cpu_seconds``
the CPU time of each process over training, prediction and export (the machine is shared: the
CPU times say what the protocol costs, the wall clock what the run took).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.datasets import load_breast_cancer, make_classification  # type: ignore[import-untyped]
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

from privledger.protocols.channel import Channel, ChannelClosed, ChannelTimeout, Side
from privledger.protocols.fl.contribution import roc_auc
from privledger.protocols.fl.gbdt import (
    GbdtConfig,
    export_feature_owner,
    export_label_holder,
    predict_feature_owner,
    predict_label_holder,
    train_feature_owner,
    train_label_holder,
)

F64 = npt.NDArray[np.float64]
AUC_TOLERANCE = 0.01


class PipeChannel(Channel):
    """A channel end over a ``multiprocessing`` pipe (two local processes)."""

    def __init__(self, side: Side, connection: Connection) -> None:
        super().__init__(side)
        self._connection = connection

    def close(self) -> None:
        self._connection.close()

    def _send_raw(self, payload: bytes) -> None:
        try:
            self._connection.send_bytes(payload)
        except OSError as exc:
            raise ChannelClosed(str(exc)) from exc

    def _recv_raw(self, timeout: float | None) -> bytes:
        try:
            if not self._connection.poll(timeout):
                raise ChannelTimeout(f"no message within {timeout} s")
            return self._connection.recv_bytes()
        except (OSError, EOFError) as exc:
            raise ChannelClosed(str(exc)) from exc


def _data(dataset: str, rows: int) -> tuple[F64, F64, F64, F64, int]:
    """Train and test rows, labels, and the label holder's column count."""
    if dataset == "breast_cancer":
        features, labels = load_breast_cancer(return_X_y=True)
        split = train_test_split(features, labels, test_size=0.3, random_state=0)
        own = 12
    else:
        features, labels = make_classification(
            n_samples=rows + rows // 5, n_features=30, n_informative=12, random_state=0
        )
        split = train_test_split(features, labels, test_size=rows // 5, random_state=0)
        own = 15
    x_train, x_test, y_train, y_test = (np.asarray(part, dtype=np.float64) for part in split)
    return x_train, x_test, y_train, y_test, own


def _owner(connection: Connection, train: F64, test: F64, config: GbdtConfig) -> None:
    channel = PipeChannel("b", connection)
    model = train_feature_owner(channel, train, config=config)
    predict_feature_owner(channel, model, test)
    export_feature_owner(channel, model, names=[f"x{c}" for c in range(train.shape[1])])
    report = {"peak_rss_mb": _peak_rss_mb(), "cpu_seconds": time.process_time()}
    connection.send_bytes(json.dumps(report).encode())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _lightgbm(config: GbdtConfig, x_train: F64, y_train: F64) -> tuple[lgb.Booster, float]:
    start = time.perf_counter()
    booster = lgb.train(
        {
            "objective": "binary",
            "max_depth": config.max_depth,
            "num_leaves": 2**config.max_depth,
            "learning_rate": config.learning_rate,
            "lambda_l2": config.l2,
            "max_bin": config.max_bins,
            "min_data_in_leaf": config.min_child_samples,
            "num_threads": 1,
            "verbose": -1,
        },
        lgb.Dataset(x_train, y_train),
        num_boost_round=config.trees,
    )
    return booster, time.perf_counter() - start


def bench(dataset: str, rows: int, config: GbdtConfig) -> dict[str, Any]:
    x_train, x_test, y_train, y_test, own = _data(dataset, rows)
    peer, peer_seconds = _lightgbm(config, x_train, y_train)
    baseline = roc_auc(peer.predict(x_test), y_test)
    here, there = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_owner, args=(there, x_train[:, own:], x_test[:, own:], config)
    )
    child.start()
    channel = PipeChannel("a", here)
    start, start_cpu = time.perf_counter(), time.process_time()
    model = train_label_holder([channel], x_train[:, :own], y_train, config=config)
    trained = time.perf_counter()
    probabilities = predict_label_holder([channel], model, x_test[:, :own])
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - start_cpu
    names = [f"x{c}" for c in range(own)]
    merged = export_label_holder([channel], model, names=names, parties=["holder", "owner"])
    owner_report = json.loads(here.recv_bytes())
    child.join()
    exported = lgb.Booster(model_str=merged.to_lightgbm()).predict(x_test)
    gap = max(
        float(np.max(np.abs(merged.predict(x_test) - probabilities))),
        float(np.max(np.abs(exported - probabilities))),
    )
    auc = roc_auc(probabilities, y_test)
    if gap > 1e-9:
        raise SystemExit(f"joint prediction differs from the exported model by {gap:.2e}")
    if auc < baseline - AUC_TOLERANCE:
        raise SystemExit(f"AUC {auc:.4f} is not within {AUC_TOLERANCE} of LightGBM {baseline:.4f}")
    return {
        "bench": "fl",
        "mode": "vertical-gbdt",
        "params": {
            "protocol": "SecureBoost: Paillier (phe keys, DJN short-randomness encryption), "
            "packed g/h, paired-column histograms, compressed candidates",
            "dataset": dataset,
            "rows": int(y_train.size),
            "test_rows": int(y_test.size),
            "columns": [own, int(x_train.shape[1] - own)],
            "trees": config.trees,
            "max_depth": config.max_depth,
            "learning_rate": config.learning_rate,
            "max_bins": config.max_bins,
            "l2": config.l2,
            "key_bits": config.key_bits,
            "transport": "two processes, pipe",
        },
        "seconds": round(seconds, 2),
        "train_seconds": round(trained - start, 2),
        "cpu_seconds": {
            "label_holder": round(cpu_seconds, 2),
            "feature_owner": round(owner_report["cpu_seconds"], 2),
        },
        "peak_rss_mb": round(max(_peak_rss_mb(), owner_report["peak_rss_mb"]), 1),
        "auc": round(auc, 5),
        "baseline_auc": round(baseline, 5),
        "trees_kept": len(model.leaf_values),
        "max_gap_vs_export": gap,
        "bytes_sent": channel.bytes_sent,
        "bytes_received": channel.bytes_received,
        "peer": "LightGBM (pooled, 1 thread, same parameters)",
        "peer_seconds": round(peer_seconds, 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["vertical-gbdt"], default="vertical-gbdt")
    parser.add_argument("--dataset", choices=["breast_cancer", "synthetic"], help="default: both")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic training rows")
    parser.add_argument("--trees", type=int, default=10)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--learning-rate", type=float, default=0.3)
    parser.add_argument("--bins", type=int, default=32)
    parser.add_argument("--key-bits", type=int, default=2048)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    config = GbdtConfig(
        trees=args.trees,
        max_depth=args.depth,
        learning_rate=args.learning_rate,
        max_bins=args.bins,
        key_bits=args.key_bits,
        seed=0,
        timeout=3600.0,
    )
    for dataset in [args.dataset] if args.dataset else ["breast_cancer", "synthetic"]:
        result = bench(dataset, args.rows, config)
        print(json.dumps(result) if args.json else json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
