"""The telecom-fraud data: deterministic by seed, overlapping sets, and both halves informative
(the reason the scenario pays the telecom for its columns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from privledger.scenarios import fraud


def fit_auc(train: np.ndarray, labels: np.ndarray, test: np.ndarray, truth: np.ndarray) -> float:
    scaler = StandardScaler().fit(train)
    model = LogisticRegression(max_iter=5_000).fit(scaler.transform(train), labels)
    return float(roc_auc_score(truth, model.decision_function(scaler.transform(test))))


def joined(data: fraud.FraudData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bank_keys, bank = fraud.read_columns(data.bank_csv, [*fraud.BANK_FEATURES, fraud.LABEL])
    telecom_keys, telecom = fraud.read_columns(data.telecom_csv, list(fraud.TELECOM_FEATURES))
    where = {key: i for i, key in enumerate(telecom_keys)}
    both = [i for i, key in enumerate(bank_keys) if key in where]
    rows = [where[bank_keys[i]] for i in both]
    return bank[both, :-1], telecom[rows], bank[both, -1]


def test_generation_is_deterministic_and_the_sets_overlap(tmp_path: Path) -> None:
    first = fraud.generate(tmp_path / "a", customers=500, seed=3)
    again = fraud.generate(tmp_path / "b", customers=500, seed=3)
    assert first.bank_csv.read_bytes() == again.bank_csv.read_bytes()
    assert first.telecom_csv.read_bytes() == again.telecom_csv.read_bytes()
    bank_keys, _ = fraud.read_columns(first.bank_csv, [])
    telecom_keys, _ = fraud.read_columns(first.telecom_csv, [])
    assert len(bank_keys) == 500 and len(telecom_keys) == 750
    assert len(set(bank_keys) & set(telecom_keys)) == first.common == 425
    assert 0.03 < first.fraud_cases / 500 < 0.15


def test_both_halves_carry_signal_and_together_are_best(tmp_path: Path) -> None:
    train = joined(fraud.generate(tmp_path / "train", customers=3_000, seed=1))
    test = joined(fraud.generate(tmp_path / "test", customers=3_000, seed=2))
    bank_only = fit_auc(train[0], train[2], test[0], test[2])
    telecom_only = fit_auc(train[1], train[2], test[1], test[2])
    both = fit_auc(np.hstack(train[:2]), train[2], np.hstack(test[:2]), test[2])
    assert 0.7 < bank_only < both and 0.7 < telecom_only < both
    assert both > 0.9


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 6, 300).astype(float)
    labels = (rng.random(300) < 0.3).astype(float)
    assert abs(fraud.auc(scores, labels) - roc_auc_score(labels, scores)) < 1e-12
