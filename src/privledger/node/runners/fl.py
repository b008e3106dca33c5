"""Federated-learning tasks: vertical logistic regression (PSI alignment inside the task, secret
shared training, Shapley contributions)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import numpy.typing as npt

from privledger.evm.contracts import FailureReason
from privledger.node.runners.base import Run, RunOutput, TaskRefused
from privledger.protocols.fl.contribution import mean_log_likelihood, shapley_values
from privledger.protocols.fl.vertical import (
    VerticalConfig,
    predict_vertical,
    predict_vertical_plaintext,
    train_vertical_plaintext,
    train_vertical_ss,
)
from privledger.protocols.psi import kkrt

VALIDATION_BYTE = 51  # ~20% of aligned rows are held out to measure contributions


def run(task: Run) -> RunOutput:
    return _vertical(task)


def validation_row(key: bytes) -> bool:
    """Whether an aligned row is held out for validation (the same answer on every node)."""
    return hashlib.sha256(b"privledger/fl/validation/" + key).digest()[0] < VALIDATION_BYTE


def two_party_shapley(
    standard: npt.NDArray[np.float64],
    labels: npt.NDArray[np.float64],
    held_out: npt.NDArray[np.bool_],
    joint: npt.NDArray[np.float64],
    *,
    requester: int,
    parties: list[int],
) -> dict[str, float]:
    """Shapley values of the two parties by validation log-likelihood (label holder = requester).

    v(none) = v(partner alone) = the label prior (the partner has no labels); v(requester) = its
    own columns retrained in plaintext on its side; v(both) = the jointly trained model.
    """
    other = next(org for org in parties if org != requester)
    train, valid = ~held_out, held_out
    prior = float(np.clip(labels[train].mean(), 1e-6, 1 - 1e-6))
    v_none = mean_log_likelihood(np.full(int(valid.sum()), prior), labels[valid])
    own = train_vertical_plaintext([standard[train]], labels[train], config=VerticalConfig())
    v_own = mean_log_likelihood(predict_vertical_plaintext([standard[valid]], own), labels[valid])
    v_both = mean_log_likelihood(joint, labels[valid])
    values = shapley_values(
        [requester, other],
        lambda s: v_both if len(s) == 2 else v_own if requester in s else v_none,
    )
    return {str(org): value for org, value in values.items()}


def _vertical(task: Run) -> RunOutput:
    """Vertical logistic regression: align the two parties' rows by PSI inside the task (both
    learn the common ids, as vertical FL needs), then train by secret sharing; each party keeps
    its own model part (weights of its columns, the intercept at the label holder)."""
    spec, rows, mine = task.spec, task.rows, task.mine
    assert mine is not None  # the dealer never reaches a runner
    peer_org = next(org for org in task.owners if org != task.org)
    ids = [row[0] for row in rows]
    aligned = kkrt.run_psi(
        task.channels[peer_org],
        ids,
        role=task.role,
        reveal_to_provider=True,
        timeout=task.timeout,
    )
    position = {key: index for index, key in reversed(list(enumerate(ids)))}
    order = [position[key] for key in aligned.intersection]
    width = len(mine.features or ())
    try:
        features = np.array(
            [[float(value) for value in rows[i][1 : 1 + width]] for i in order], dtype=float
        ).reshape(len(order), width)
        labels = np.array([float(rows[i][-1]) for i in order]) if task.is_requester else None
    except ValueError as exc:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, f"non-numeric value: {exc}") from exc
    if len(order) < 2:
        raise TaskRefused(FailureReason.POLICY_VIOLATION, "fewer than 2 aligned rows")
    # each party standardises its own columns; the means and scales travel with its model
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    standard = (features - mean) / scale
    # a validation fifth, chosen from the common ids alike on both sides, measures contributions
    held_out = np.array([validation_row(key) for key in aligned.intersection], dtype=bool)
    party = task.party()
    label_holder = task.owners.index(spec.requester)
    model = train_vertical_ss(
        party,
        standard[~held_out],
        None if labels is None else labels[~held_out],
        label_holder=label_holder,
        config=VerticalConfig(),
    )
    joint = predict_vertical(party, standard[held_out], model, requester=label_holder)
    part: dict[str, object] = {
        "aligned": len(order),
        "features": list(mine.features or ()),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "weights": model.weights.tolist(),
        "intercept": model.intercept,
    }
    if joint is not None and labels is not None:
        part["contributions"] = two_party_shapley(
            standard, labels, held_out, joint, requester=spec.requester, parties=task.owners
        )
    return [json.dumps(part, sort_keys=True)], len(order)
