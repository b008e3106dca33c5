"""Issue 15 item 1, the end of training: what a label-less party keeps of a vertical-lr task.

The attacker (party 1) holds no labels and crafts one indicator column per target row. With
each party's final weights opened to it (the old default output of a vertical-lr task, now the
spec's ``output: "weights"``), ``w_1 ~ -X_1^T r / (n l2)``: the weight of row ``k``'s indicator
is positive exactly when ``y_k = 1`` -- every target label. The default output keeps the model
secret-shared: the attacker keeps uniformly random shares and guesses at chance. Releasing the
weights needs every data owner's grant terms to list the output ``weights``.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from privledger.node.runners.fl import model_part, train_model
from privledger.node.spec import parse_spec
from privledger.node.terms import default_terms, violation
from privledger.protocols.fl.vertical import VerticalConfig
from privledger.protocols.mpc.dealer import local_mesh
from tests.protocols.fl.conftest import Split

pytestmark = pytest.mark.privacy

TARGETS = 40


def _attack(part: dict[str, object]) -> np.ndarray:
    """The attacker's best reading of its task output: the sign of the weight of each
    indicator column, or of its share of that weight when it keeps only shares."""
    if "weights" in part:
        weights = np.asarray(part["weights"], dtype=float)
    else:
        shares = np.frombuffer(bytes.fromhex(str(part["shares"])), "<u8")
        weights = shares[-TARGETS:].view(np.int64).astype(float)
    return (weights[:TARGETS] > 0).astype(float)


def _recovered(split: Split, *, reveal: bool) -> tuple[int, dict[str, object]]:
    x0 = split.x_train[:, :10]
    labels = split.y_train.copy()
    labels[:TARGETS] = np.frombuffer(secrets.token_bytes(TARGETS), np.uint8) & 1
    indicators = np.zeros((x0.shape[0], TARGETS))
    indicators[np.arange(TARGETS), np.arange(TARGETS)] = 1.0
    config = VerticalConfig(epochs=3)
    with local_mesh(2) as mesh:
        parts = mesh.run(
            lambda p: model_part(
                p,
                train_model(
                    p,
                    x0 if p.index == 0 else indicators,
                    labels if p.index == 0 else None,
                    label_holder=0,
                    config=config,
                    reveal=reveal,
                ),
            )
        )
    return int(np.sum(_attack(parts[1]) == labels[:TARGETS])), parts[1]


def test_a_party_without_labels_learns_no_label_from_its_model_part(breast_cancer: Split) -> None:
    correct, part = _recovered(breast_cancer, reveal=False)
    assert "weights" not in part and "intercept" not in part
    # chance is 20 of 40 (sd 3.2); the opened weights give all 40
    assert correct <= 32, f"the attacker recovered {correct} of {TARGETS} labels"


def test_released_weights_leak_every_target_label_and_need_the_terms(
    breast_cancer: Split,
) -> None:
    """The attack on the old default output, kept as the documented leak of ``weights``."""
    correct, _ = _recovered(breast_cancer, reveal=True)
    assert correct == TARGETS
    inputs = [
        {"dataset": "0x" + "11" * 32, "org": 1, "column": "id", "value_column": "y"},
        {"dataset": "0x" + "22" * 32, "org": 2, "column": "id", "features": ["x"]},
    ]
    fields = {"protocol": "vertical-lr", "requester": 1, "dealer": 3, "inputs": inputs}
    weights = parse_spec({**fields, "output": "weights"})
    shared = parse_spec(fields)
    terms = default_terms(["fl"], ["id", "x"])
    assert violation(shared, terms, shared.inputs[1], fee=0) is None
    refused = violation(weights, terms, weights.inputs[1], fee=0)
    assert refused is not None and refused.term == "outputs"
    allowing = terms.model_copy(update={"outputs": ("requester", "weights")})
    assert violation(weights, allowing, weights.inputs[1], fee=0) is None
