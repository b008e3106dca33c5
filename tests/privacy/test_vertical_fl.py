"""Item 1 of issue 15: a party without labels reads labels out of vertical LR.

The attacker (party 1) holds no labels; it crafts its columns: one indicator column per target
row (1 in that row, 0 elsewhere). Whatever vertical training opens to it in the clear is
recorded (the ``open_to`` results that land at party 1). In the old protocol it received its
gradient ``X_1^T r`` every epoch: the indicator column of row ``k`` gives ``r_k = s_k - y_k``,
negative exactly when ``y_k = 1`` -- every target label from epoch 0. Now gradients, residuals
and weights stay shared; the attacker sees nothing in the clear during training.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from privledger.protocols.fl import vertical
from privledger.protocols.fl.vertical import (
    VerticalConfig,
    predict_vertical_shared,
    train_vertical_ss,
    train_vertical_ss_shared,
)
from privledger.protocols.mpc import sharing
from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.ring import decode_fixed
from privledger.protocols.mpc.sharing import Party
from tests.protocols.fl.conftest import Split

pytestmark = pytest.mark.privacy

TARGETS = 40
F = 16


def _crafted(split_: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Party 0's real columns and labels (with random labels on the targets, so chance is 1/2),
    and the attacker's indicator columns for the first ``TARGETS`` rows."""
    x0 = split_.x_train[:, :10]
    labels = split_.y_train.copy()
    labels[:TARGETS] = np.frombuffer(secrets.token_bytes(TARGETS), np.uint8) & 1
    indicators = np.zeros((x0.shape[0], TARGETS))
    indicators[np.arange(TARGETS), np.arange(TARGETS)] = 1.0
    return x0, labels, indicators


def _record_clear_values(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Everything vertical training opens to party 1 in the clear."""
    seen: list[np.ndarray] = []
    real_open_to = sharing.open_to

    def recording(party: Party, group: tuple[int, ...], shares: np.ndarray, target: int):  # type: ignore[no-untyped-def]
        opened = real_open_to(party, group, shares, target)
        if opened is not None and party.index == 1:
            seen.append(opened.copy())
        return opened

    monkeypatch.setattr(vertical, "open_to", recording)
    return seen


def _gradient_attack(seen: list[np.ndarray]) -> np.ndarray:
    """Guess ``y_k = 1`` where the first value opened to the attacker for column k is negative
    (its epoch-0 gradient); a coin where nothing of that size was opened."""
    coin = np.frombuffer(secrets.token_bytes(TARGETS), np.uint8) & 1
    for opened in seen:
        if opened.size == TARGETS:
            return (decode_fixed(opened, 2 * F) < 0).astype(np.uint8)
    return coin


def test_training_opens_no_gradient_to_a_party_without_labels(
    breast_cancer: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    x0, labels, indicators = _crafted(breast_cancer)
    seen = _record_clear_values(monkeypatch)
    config = VerticalConfig(epochs=3)
    with local_mesh(2) as mesh:
        models = mesh.run(
            lambda p: train_vertical_ss_shared(
                p,
                x0 if p.index == 0 else indicators,
                labels if p.index == 0 else None,
                config=config,
            )
        )
        predictions = mesh.run(
            lambda p: predict_vertical_shared(
                p, x0[:50] if p.index == 0 else indicators[:50], models[p.index], requester=0
            )
        )
    guess = _gradient_attack(seen)
    correct = int(np.sum(guess == labels[:TARGETS]))
    assert seen == [], f"{len(seen)} values opened to the attacker in the clear"
    # chance is 20 of 40 (sd 3.2); reading the gradient gets all 40
    assert correct <= 32, f"the attacker recovered {correct} of {TARGETS} labels"
    assert predictions[1] is None and predictions[0] is not None


def test_own_weights_are_the_only_clear_values_and_carry_the_documented_leak(
    breast_cancer: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default output each party gets its own final weights, and nothing else: one
    opening of ``d_1`` values. Those weights are ``d_1`` linear combinations of the final
    residuals (the stated leakage): indicator columns still give the targets' labels, which is
    why the security model tells data owners to keep models shared when columns are adversarial.
    """
    x0, labels, indicators = _crafted(breast_cancer)
    seen = _record_clear_values(monkeypatch)
    with local_mesh(2) as mesh:
        models = mesh.run(
            lambda p: train_vertical_ss(
                p,
                x0 if p.index == 0 else indicators,
                labels if p.index == 0 else None,
                config=VerticalConfig(epochs=3),
            )
        )
    assert [opened.size for opened in seen] == [TARGETS]  # no per-epoch gradient
    recovered = (models[1].weights > 0).astype(float)
    assert np.array_equal(recovered, labels[:TARGETS])
