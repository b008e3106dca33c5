"""Vertical SecureBoost (protocols/fl/gbdt.py) over in-memory channels on breast_cancer.

One training run (two parties, 1024-bit test key to keep the suite fast; production uses 2048)
is shared by the accuracy, prediction and export tests; smaller runs cover three parties, early
stopping and refusals.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score

from privledger.protocols.channel import Channel, channel_pair
from privledger.protocols.fl.gbdt import (
    GbdtConfig,
    GbdtError,
    GbdtJointScorer,
    LabelHolderModel,
    OwnerModel,
    export_feature_owner,
    export_label_holder,
    predict_feature_owner,
    predict_label_holder,
    train_feature_owner,
    train_label_holder,
)
from privledger.protocols.fl.gbdt_binning import FeatureBins
from privledger.protocols.fl.gbdt_tree import MergedModel, feature_names
from privledger.protocols.fl.joint import predict_joint
from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.sharing import Party
from tests.protocols.fl.conftest import Split
from tests.protocols.fl.test_joint import receive_outside

pytestmark = pytest.mark.slow

CONFIG = GbdtConfig(trees=10, max_depth=3, learning_rate=0.3, key_bits=1024, seed=7)
BLOCKS = (slice(0, 12), slice(12, 30))  # label holder's columns, feature owner's columns
NAMES = [str(name) for name in load_breast_cancer().feature_names]  # "mean radius", ...
PARTIES = ("bank", "hospital")


def run_parties(
    holder: Callable[[list[Channel]], Any], owners: Sequence[Callable[[Channel], Any]]
) -> tuple[Any, list[Any]]:
    """The label holder in this thread, each feature owner in its own, over channel pairs."""
    pairs = [channel_pair() for _ in owners]
    results: list[Any] = [None] * len(owners)
    failures: list[BaseException] = []

    def owner_thread(k: int) -> None:
        try:
            results[k] = owners[k](pairs[k][1])
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=owner_thread, args=(k,)) for k in range(len(owners))]
    for thread in threads:
        thread.start()
    try:
        result = holder([a for a, _ in pairs])
    finally:
        for thread in threads:
            thread.join(timeout=120)
    if failures:
        raise failures[0]
    return result, results


@pytest.fixture(scope="module")
def trained(breast_cancer: Split) -> tuple[LabelHolderModel, OwnerModel, np.ndarray, MergedModel]:
    """Train, predict the test rows jointly and export, in one session of the two parties."""
    x_own, x_theirs = (breast_cancer.x_train[:, b] for b in BLOCKS)
    t_own, t_theirs = (breast_cancer.x_test[:, b] for b in BLOCKS)

    def holder(channels: list[Channel]) -> tuple[LabelHolderModel, np.ndarray, MergedModel]:
        model = train_label_holder(channels, x_own, breast_cancer.y_train, config=CONFIG)
        probabilities = predict_label_holder(channels, model, t_own)
        merged = export_label_holder(channels, model, names=NAMES[BLOCKS[0]], parties=PARTIES)
        return model, probabilities, merged

    def owner(channel: Channel) -> OwnerModel:
        model = train_feature_owner(channel, x_theirs, config=CONFIG)
        predict_feature_owner(channel, model, t_theirs)
        export_feature_owner(channel, model, names=NAMES[BLOCKS[1]])
        return model

    (model, probabilities, merged), (owner_model,) = run_parties(holder, [owner])
    return model, owner_model, probabilities, merged


def test_auc_within_001_of_lightgbm_on_pooled_data(breast_cancer: Split, trained: Any) -> None:
    _, _, probabilities, _ = trained
    pooled = lgb.train(
        {
            "objective": "binary",
            "max_depth": CONFIG.max_depth,
            "num_leaves": 2**CONFIG.max_depth,
            "learning_rate": CONFIG.learning_rate,
            "lambda_l2": CONFIG.l2,
            "max_bin": CONFIG.max_bins,
            "min_data_in_leaf": CONFIG.min_child_samples,
            "verbose": -1,
        },
        lgb.Dataset(breast_cancer.x_train, breast_cancer.y_train),
        num_boost_round=CONFIG.trees,
    )
    baseline = roc_auc_score(breast_cancer.y_test, pooled.predict(breast_cancer.x_test))
    auc = roc_auc_score(breast_cancer.y_test, probabilities)
    assert auc >= baseline - 0.01, (auc, baseline)


def test_both_parties_hold_the_shapes_and_only_their_own_splits(trained: Any) -> None:
    model, owner_model, _, _ = trained
    assert len(model.own.shapes) == len(owner_model.shapes) == CONFIG.trees
    assert model.own.shapes == owner_model.shapes
    for t, owners in enumerate(model.owners):
        assert set(owners) == set(model.own.shapes[t].internal)
        assert set(model.own.splits[t]) == {v for v, p in owners.items() if p == 0}
        assert set(owner_model.splits[t]) == {v for v, p in owners.items() if p == 1}
    assert any(1 in owners.values() for owners in model.owners)  # the owner's columns are used
    assert all(
        values.size == len(s.leaves)
        for values, s in zip(model.leaf_values, model.own.shapes, strict=True)
    )


def test_joint_prediction_equals_the_merged_plaintext_model(
    breast_cancer: Split, trained: Any
) -> None:
    _, _, probabilities, merged = trained
    np.testing.assert_allclose(
        merged.predict(breast_cancer.x_test), probabilities, rtol=0, atol=1e-12
    )


def test_lightgbm_export_predicts_like_the_joint_model(breast_cancer: Split, trained: Any) -> None:
    _, _, probabilities, merged = trained
    booster = lgb.Booster(model_str=merged.to_lightgbm())
    assert booster.num_trees() == CONFIG.trees
    np.testing.assert_allclose(booster.predict(breast_cancer.x_test), probabilities, atol=1e-12)


def test_the_export_names_the_features_by_the_parties_columns(trained: Any) -> None:
    """Each party revealed its column names with its splits; LightGBM's names have no spaces."""
    _, _, _, merged = trained
    expected = [name.replace(" ", "_") for name in NAMES]
    assert list(merged.feature_names) == expected and expected[0] == "mean_radius"
    assert lgb.Booster(model_str=merged.to_lightgbm()).feature_name() == expected


@pytest.mark.parametrize(
    "names",
    [NAMES[BLOCKS[1]][:-1], [*NAMES[BLOCKS[1]][:-1], "x" * 129], [*NAMES[BLOCKS[1]][:-1], 7]],
    ids=["too-few", "too-long", "not-a-string"],
)
def test_the_label_holder_refuses_malformed_column_names(trained: Any, names: list[Any]) -> None:
    model, owner_model, _, _ = trained
    trees = [{str(v): [s.column, s.threshold] for v, s in t.items()} for t in owner_model.splits]
    text = json.dumps({"type": "splits_revealed", "trees": trees, "names": names}).encode()

    def owner(channel: Channel) -> None:  # a feature owner that sends bad names
        channel.recv(10)
        channel.send(len(text).to_bytes(4, "big") + text)

    def holder(channels: list[Channel]) -> MergedModel:
        return export_label_holder(channels, model, names=NAMES[BLOCKS[0]], parties=PARTIES)

    with pytest.raises(GbdtError, match="party 1 must name its 18 columns"):
        run_parties(holder, [owner])


def test_feature_names_are_sanitised_prefixed_where_shared_and_unique() -> None:
    columns = [["age", "a b", "a_b"], ["age", "x,y"], ["z"]]
    assert feature_names(columns, ["bank a", "telecom", "org 3"]) == (
        "bank_a.age",
        "a_b",
        "a_b_2",
        "telecom.age",
        "x_y",
        "z",
    )


@pytest.mark.parametrize("output", ["ids", "scores"])
def test_joint_prediction_with_output_control_releases_the_merged_models_output(
    breast_cancer: Split, trained: Any, output: str
) -> None:
    """The model parties (0, 1) score through :mod:`.joint` for a requester outside them (2):
    it receives the probabilities, or only which rows reach the threshold."""
    model, owner_model, _, merged = trained
    rows, threshold = breast_cancer.x_test.shape[0], 0.5

    def predict(party: Party):  # type: ignore[no-untyped-def]
        if party.index == 2:
            return receive_outside(party, rows, output)
        part = model if party.index == 0 else owner_model
        return predict_joint(
            party,
            GbdtJointScorer(part, (0, 1), 0, 16),
            breast_cancer.x_test[:, BLOCKS[party.index]],
            rows=rows,
            requester=2,
            output=output,  # type: ignore[arg-type]
            threshold=threshold if output == "ids" else None,
            requester_holds_ids=True,
        )

    with local_mesh(3) as mesh:
        released = mesh.run(predict)
    assert released[0] is None and released[1] is None
    expected = merged.predict(breast_cancer.x_test)
    if output == "ids":
        np.testing.assert_array_equal(released[2].above, expected >= threshold)
    else:
        np.testing.assert_allclose(released[2].probabilities, expected, atol=1e-4)


def test_party_gain_shares_match_the_exported_gain_importance(trained: Any) -> None:
    model, _, _, merged = trained
    shares = model.party_importance()
    gain = lgb.Booster(model_str=merged.to_lightgbm()).feature_importance(importance_type="gain")
    own_columns = BLOCKS[0].stop
    expected = np.array([gain[:own_columns].sum(), gain[own_columns:].sum()]) / gain.sum()
    np.testing.assert_allclose(shares, expected, rtol=1e-6)
    assert 0 < shares[1] < 1


def test_each_part_round_trips_through_json(breast_cancer: Split, trained: Any) -> None:
    model, owner_model, _, _ = trained
    again = LabelHolderModel.from_json(json.loads(json.dumps(model.to_json())))
    owner_again = OwnerModel.from_json(json.loads(json.dumps(owner_model.to_json())))
    assert owner_again == owner_model
    assert again.own == model.own and again.owners == model.owners and again.gains == model.gains
    assert all(
        np.array_equal(a, b) for a, b in zip(again.leaf_values, model.leaf_values, strict=True)
    )
    x_theirs = breast_cancer.x_test[:, BLOCKS[1]]
    np.testing.assert_array_equal(owner_again.masks(x_theirs), owner_model.masks(x_theirs))


def test_three_parties_with_subsampling(breast_cancer: Split) -> None:
    config = GbdtConfig(
        trees=3, max_depth=2, key_bits=1024, row_subsample=0.7, col_subsample=0.5, seed=3
    )
    blocks = (slice(0, 10), slice(10, 20), slice(20, 30))
    train = [breast_cancer.x_train[:, b] for b in blocks]
    test = [breast_cancer.x_test[:, b] for b in blocks]

    def holder(channels: list[Channel]) -> tuple[np.ndarray, MergedModel]:
        model = train_label_holder(channels, train[0], breast_cancer.y_train, config=config)
        probabilities = predict_label_holder(channels, model, test[0])
        names = [f"a{c}" for c in range(10)]
        return probabilities, export_label_holder(
            channels, model, names=names, parties=["bank-b", "telecom", "bank-a"]
        )

    def owner(k: int) -> Callable[[Channel], None]:
        def run(channel: Channel) -> None:  # both feature owners name their columns x0..x9
            model = train_feature_owner(channel, train[k], config=config)
            predict_feature_owner(channel, model, test[k])
            export_feature_owner(channel, model, names=[f"x{c}" for c in range(10)])

        return run

    (probabilities, merged), _ = run_parties(holder, [owner(1), owner(2)])
    assert roc_auc_score(breast_cancer.y_test, probabilities) > 0.95
    np.testing.assert_allclose(merged.predict(breast_cancer.x_test), probabilities, atol=1e-12)
    booster = lgb.Booster(model_str=merged.to_lightgbm())
    assert booster.feature_name()[9:12] == ["a9", "telecom.x0", "telecom.x1"]
    assert booster.feature_name()[-1] == "bank-a.x9"
    np.testing.assert_allclose(booster.predict(breast_cancer.x_test), probabilities, atol=1e-12)


def test_early_stopping_keeps_the_best_validation_iteration(breast_cancer: Split) -> None:
    config = GbdtConfig(
        trees=8, max_depth=2, learning_rate=1.0, key_bits=1024, early_stopping_rounds=1, seed=5
    )
    x, y = breast_cancer.x_train, breast_cancer.y_train
    fit, held = slice(0, 300), slice(300, None)

    def holder(channels: list[Channel]) -> LabelHolderModel:
        return train_label_holder(
            channels, x[fit, :12], y[fit], config=config, valid=(x[held, :12], y[held])
        )

    def owner(channel: Channel) -> OwnerModel:
        return train_feature_owner(channel, x[fit, 12:], config=config, valid_features=x[held, 12:])

    model, (owner_model,) = run_parties(holder, [owner])
    assert 1 <= len(model.leaf_values) < config.trees  # lr 1.0 overfits: it stops early
    assert owner_model.shapes == model.own.shapes


def test_a_feature_owner_refuses_other_parameters(breast_cancer: Split) -> None:
    x = breast_cancer.x_train

    def holder(channels: list[Channel]) -> None:
        train_label_holder(channels, x[:, :12], breast_cancer.y_train, config=CONFIG)

    def owner(channel: Channel) -> None:
        other = GbdtConfig(trees=10, max_depth=4, key_bits=1024)
        train_feature_owner(channel, x[:, 12:], config=other)

    with pytest.raises(GbdtError, match=r"parameters differ|aborted"):
        run_parties(holder, [owner])


def test_binning_thresholds_match_bins() -> None:
    column = np.random.default_rng(0).normal(size=(500, 1))
    bins = FeatureBins.fit(column, 16)
    binned = bins.transform(column)[:, 0]
    for b in range(bins.widths[0] - 1):
        np.testing.assert_array_equal(binned <= b, column[:, 0] <= bins.threshold(0, b))
