"""The police / carrier data of the fraud-list story: deterministic by seed, the documented
overlap, and a model on the police's labels that finds the current subscribers' fraudsters as
the generator's docstring says (seed 5)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from privledger.scenarios import fraud_list


def _read(path: Path, columns: list[str]) -> tuple[list[str], np.ndarray]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row[fraud_list.KEY] for row in rows], np.array(
        [[float(row[c]) for c in columns] for row in rows]
    )


def test_generation_is_deterministic(tmp_path: Path) -> None:
    first = fraud_list.generate(tmp_path / "a", subscribers=500, current=300, seed=3)
    again = fraud_list.generate(tmp_path / "b", subscribers=500, current=300, seed=3)
    for name in ("police_csv", "carrier_past_csv", "carrier_current_csv"):
        assert getattr(first, name).read_bytes() == getattr(again, name).read_bytes()
    assert first.current_fraud == again.current_fraud


def test_the_documented_run(tmp_path: Path) -> None:
    data = fraud_list.generate(tmp_path, seed=5)
    police, labels = _read(data.police_csv, [fraud_list.LABEL])
    past, columns = _read(data.carrier_past_csv, list(fraud_list.FEATURES))
    current, now = _read(data.carrier_current_csv, list(fraud_list.FEATURES))
    where = {key: i for i, key in enumerate(past)}
    both = [i for i, key in enumerate(police) if key in where]
    assert len(police) == data.labelled == 1_800 and len(both) == 1_500
    assert len(current) == 2_000 and len(data.current_fraud) == 123
    assert len(set(current) & set(past)) == 1_000  # half the current subscribers are new
    scaler = StandardScaler().fit(columns[[where[police[i]] for i in both]])
    model = LogisticRegression().fit(
        scaler.transform(columns[[where[police[i]] for i in both]]), labels[both, 0]
    )
    probability = model.predict_proba(scaler.transform(now))[:, 1]
    truth = np.array([key in data.current_fraud for key in current])
    assert round(float(roc_auc_score(truth, probability)), 2) == 0.93
    flagged = {key for key, p in zip(current, probability, strict=True) if p >= 0.3}
    precision, recall = fraud_list.precision_recall(flagged, data.current_fraud)
    assert len(flagged) == 106 and round(precision, 2) == 0.63 and round(recall, 2) == 0.54
