"""Joint prediction with a shared vertical LR model: the released output equals the plaintext
model's on the same rows, and nothing reaches a party but the requester."""

from __future__ import annotations

import numpy as np
import pytest

from privledger.protocols.fl.joint import decode_ids, encode_ids, predict_joint, receive_joint
from privledger.protocols.fl.vertical import (
    SharedLrScorer,
    SharedModel,
    VerticalConfig,
    train_vertical_ss_shared,
)
from privledger.protocols.mpc.dealer import local_mesh
from privledger.protocols.mpc.ring import decode_fixed, reconstruct
from privledger.protocols.mpc.sharing import Party

from .conftest import Split

THRESHOLD = 0.5


def receive_outside(party: Party, rows: int, output: str) -> object:
    """What a requester outside the model parties (0, 1), holding the ids, receives of a
    joint prediction: the probabilities, or which rows reach the threshold."""
    return receive_joint(
        party,
        (0, 1),
        rows=rows,
        output=output,  # type: ignore[arg-type]
        requester_holds_ids=True,
        frac_bits=16,
        probability=lambda s: 1.0 / (1.0 + np.exp(-s)),
    )


def _trained(split: Split, mesh_size: int) -> tuple[list[SharedModel], np.ndarray]:
    """Party 0 holds the labels only, party 1 every column; returns each model party's shares
    and the plaintext logit weights (intercept last) they reconstruct to."""
    config = VerticalConfig(epochs=40)
    x = split.x_train

    def train(party: Party) -> SharedModel | None:
        if party.index > 1:
            return None
        own = np.zeros((x.shape[0], 0)) if party.index == 0 else x
        labels = split.y_train if party.index == 0 else None
        return train_vertical_ss_shared(party, own, labels, config=config, group=(0, 1))

    with local_mesh(mesh_size) as mesh:
        models = [model for model in mesh.run(train) if model is not None]
    weights = decode_fixed(reconstruct([model.shares for model in models]), models[0].frac_bits)
    return models, weights


def _plain_above(split: Split, weights: np.ndarray) -> np.ndarray:
    # party 0's block is the intercept, party 1's the 30 columns
    logits = split.x_test @ weights[1:] + weights[0]
    return 1.0 / (1.0 + np.exp(-logits)) >= THRESHOLD


def test_ids_released_by_value_to_the_label_holder_equal_the_plaintext_list(
    breast_cancer: Split,
) -> None:
    models, weights = _trained(breast_cancer, 2)
    rows = breast_cancer.x_test.shape[0]
    ids = [f"+4479{index:07d}".encode() for index in range(rows)]

    def predict(party: Party):  # type: ignore[no-untyped-def]
        scorer = SharedLrScorer(models[party.index], label_holder=0)
        features = None if party.index == 0 else breast_cancer.x_test
        return predict_joint(
            party,
            scorer,
            features,
            rows=rows,
            requester=0,
            output="ids",
            threshold=THRESHOLD,
            requester_holds_ids=False,
            id_holder=1,
            ids=ids if party.index == 1 else None,
        )

    with local_mesh(2) as mesh:
        released = mesh.run(predict)
    expected = [
        key for key, above in zip(ids, _plain_above(breast_cancer, weights), strict=True) if above
    ]
    assert released[1] is None
    assert released[0] is not None and released[0].ids == tuple(expected)
    assert released[0].probabilities is None and released[0].above is None


@pytest.mark.parametrize("output", ["ids", "scores"])
def test_a_requester_outside_the_model_gets_only_its_output(
    breast_cancer: Split, output: str
) -> None:
    models, weights = _trained(breast_cancer, 3)
    rows = breast_cancer.x_test.shape[0]

    def predict(party: Party):  # type: ignore[no-untyped-def]
        if party.index == 2:
            return receive_outside(party, rows, output)
        features = None if party.index == 0 else breast_cancer.x_test
        return predict_joint(
            party,
            SharedLrScorer(models[party.index], label_holder=0),
            features,
            rows=rows,
            requester=2,
            output=output,  # type: ignore[arg-type]
            threshold=THRESHOLD if output == "ids" else None,
            requester_holds_ids=True,
        )

    with local_mesh(3) as mesh:
        released = mesh.run(predict)
    assert released[0] is None and released[1] is None
    logits = breast_cancer.x_test @ weights[1:] + weights[0]
    if output == "ids":
        assert np.array_equal(released[2].above, _plain_above(breast_cancer, weights))
    else:
        assert np.allclose(released[2].probabilities, 1.0 / (1.0 + np.exp(-logits)), atol=1e-3)


def test_ids_round_trip_and_refuse_what_cannot_be_encoded() -> None:
    ids = [b"+447900000001", b"", b"x" * 63]
    words = encode_ids(ids)
    assert decode_ids(words) == tuple(ids)
    assert decode_ids(np.zeros(16, dtype=np.uint64)) == ()
    with pytest.raises(ValueError, match="longer"):
        encode_ids([b"x" * 64])
