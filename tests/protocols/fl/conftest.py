"""The acceptance data set: sklearn breast_cancer, 70/30 split with seed 0, standardised on the
training rows, and the pooled scikit-learn baseline measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    baseline_auc: float


@pytest.fixture(scope="session")
def breast_cancer() -> Split:
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.3, random_state=0
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    baseline = LogisticRegression(max_iter=10_000).fit(x_train, y_train)
    auc = float(roc_auc_score(y_test, baseline.predict_proba(x_test)[:, 1]))
    return Split(x_train, y_train.astype(float), x_test, y_test.astype(float), auc)
