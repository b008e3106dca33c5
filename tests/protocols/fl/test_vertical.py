from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privledger.protocols.fl.vertical import (
    PartyModel,
    VerticalConfig,
    piecewise_sigmoid,
    predict_vertical,
    predict_vertical_plaintext,
    predict_vertical_shared,
    secure_piecewise_sigmoid,
    train_vertical_paillier,
    train_vertical_plaintext,
    train_vertical_ss,
    train_vertical_ss_shared,
)
from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.ring import decode_fixed, encode_fixed, split
from privledger.protocols.mpc.sharing import Party, PartyDropout, open_all
from tests.protocols.fl.conftest import Split


def _columns(split_: Split, parties: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    blocks = np.array_split(np.arange(split_.x_train.shape[1]), parties)
    return [split_.x_train[:, b] for b in blocks], [split_.x_test[:, b] for b in blocks]


def _max_weight_gap(secure: list[PartyModel], plain: list[PartyModel]) -> float:
    gaps = [
        float(np.max(np.abs(s.weights - p.weights))) for s, p in zip(secure, plain, strict=True)
    ]
    gaps += [
        abs(s.intercept - p.intercept)
        for s, p in zip(secure, plain, strict=True)
        if s.intercept is not None and p.intercept is not None
    ]
    return max(gaps)


def test_secure_sigmoid_matches_the_plaintext_approximation() -> None:
    z = np.concatenate([np.linspace(-9, 9, 181), [-40.0, 40.0, 1e-5, -1e-5]])
    shares = split(encode_fixed(z, 16), 2)

    def work(party: Party) -> np.ndarray:
        group = party.parties
        result = secure_piecewise_sigmoid(party, group, shares[party.index], 16)
        return decode_fixed(open_all(party, group, result), 16)

    with local_mesh(2) as mesh:
        got = mesh.run(work)[0]
    np.testing.assert_allclose(got, piecewise_sigmoid(z), atol=1e-4)


def test_three_party_secret_shared_lr_meets_baseline_and_plaintext(breast_cancer: Split) -> None:
    train, test = _columns(breast_cancer, 3)
    config = VerticalConfig(epochs=200, learning_rate=1.0)
    labels = breast_cancer.y_train
    with local_mesh(3) as mesh:
        models = mesh.run(
            lambda p: train_vertical_ss(
                p, train[p.index], labels if p.index == 0 else None, config=config
            )
        )
        predictions = mesh.run(
            lambda p: predict_vertical(p, test[p.index], models[p.index], requester=0)
        )
    plain = train_vertical_plaintext(train, labels, config=config)
    assert _max_weight_gap(models, plain) < 1e-3
    assert predictions[1] is None and predictions[2] is None
    assert predictions[0] is not None
    np.testing.assert_allclose(predictions[0], predict_vertical_plaintext(test, plain), atol=1e-3)
    auc = roc_auc_score(breast_cancer.y_test, predictions[0])
    assert abs(auc - breast_cancer.baseline_auc) <= 0.005


def test_a_model_kept_shared_predicts_like_the_plaintext_model(breast_cancer: Split) -> None:
    train, test = _columns(breast_cancer, 2)
    config = VerticalConfig(epochs=50, learning_rate=1.0)
    labels = breast_cancer.y_train
    with local_mesh(2) as mesh:
        models = mesh.run(
            lambda p: train_vertical_ss_shared(
                p, train[p.index], labels if p.index == 0 else None, config=config
            )
        )
        predictions = mesh.run(
            lambda p: predict_vertical_shared(p, test[p.index], models[p.index], requester=0)
        )
    plain = train_vertical_plaintext(train, labels, config=config)
    assert predictions[1] is None and predictions[0] is not None
    np.testing.assert_allclose(predictions[0], predict_vertical_plaintext(test, plain), atol=1e-3)


def test_a_coalition_of_the_mesh_trains_without_the_others(breast_cancer: Split) -> None:
    """Parties 0 and 2 of a three-party mesh train and predict their coalition's model while
    party 1 sits out: what Shapley values over parties need."""
    train, test = _columns(breast_cancer, 3)
    config = VerticalConfig(epochs=20, learning_rate=1.0)
    labels = breast_cancer.y_train

    def coalition(party: Party) -> np.ndarray | None:
        if party.index == 1:
            return None
        own = train_vertical_ss(
            party,
            train[party.index],
            labels if party.index == 0 else None,
            config=config,
            group=(0, 2),
        )
        return predict_vertical(party, test[party.index], own, requester=0, group=(0, 2))

    with local_mesh(3) as mesh:
        predictions = mesh.run(coalition)
        with pytest.raises(ValueError, match="cannot run in group"):
            train_vertical_ss(mesh.parties[1], train[1], None, group=(0, 2))
    plain = train_vertical_plaintext([train[0], train[2]], labels, config=config)
    expected = predict_vertical_plaintext([test[0], test[2]], plain)
    assert predictions[0] is not None and predictions[2] is None
    np.testing.assert_allclose(predictions[0], expected, atol=1e-3)


def test_two_parties_with_the_labels_at_the_second(breast_cancer: Split) -> None:
    train, _ = _columns(breast_cancer, 2)
    config = VerticalConfig(epochs=20, learning_rate=1.0)
    labels = breast_cancer.y_train
    with local_mesh(2) as mesh:
        models = mesh.run(
            lambda p: train_vertical_ss(
                p, train[p.index], labels if p.index == 1 else None, label_holder=1, config=config
            )
        )
    plain = train_vertical_plaintext(train, labels, label_holder=1, config=config)
    assert models[0].intercept is None and models[1].intercept is not None
    assert _max_weight_gap(models, plain) < 1e-3


def test_only_the_label_holder_passes_labels(breast_cancer: Split) -> None:
    train, _ = _columns(breast_cancer, 2)
    with local_mesh(2, timeout=5) as mesh:
        with pytest.raises(ValueError):
            train_vertical_ss(mesh.parties[1], train[1], breast_cancer.y_train)
        with pytest.raises(PartyDropout):  # the refusal closed party 1's channels
            train_vertical_ss(mesh.parties[0], train[0], breast_cancer.y_train)


def test_paillier_variant_agrees_with_the_plaintext_taylor_run(breast_cancer: Split) -> None:
    rows = slice(0, 80)
    train = [part[rows] for part in _columns(breast_cancer, 3)[0]]
    labels = breast_cancer.y_train[rows]
    config = VerticalConfig(epochs=2, learning_rate=0.5)
    secure = train_vertical_paillier(train, labels, config=config, key_bits=1024)
    plain = train_vertical_plaintext(train, labels, config=config, sigmoid="taylor")
    assert _max_weight_gap(secure, plain) < 1e-4
