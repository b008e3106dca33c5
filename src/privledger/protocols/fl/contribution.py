"""Each party's contribution to model quality, and its share of the settled fee.

Value of a coalition (:func:`vertical_coalition_value`): the quality on held-out rows of the model
retrained on the columns of the parties in the coalition. The labels and the intercept are always
present -- they are the task, not a contribution -- so the empty coalition is the intercept-only
model. Two metrics:

* ``"log_likelihood"`` (default): mean test log-likelihood per row. A model given useless
  columns overfits them and scores *lower* than without them, so a pure-noise party gets a
  negative or zero Shapley value, robustly.
* ``"auc"``: test AUC (0.5 for the empty coalition). Rank-based and coarse: on 171 test rows a
  useless model's AUC varies by about +-0.05 with the noise drawn, so a pure-noise party can
  collect a few hundred basis points by chance.

The retraining uses :func:`.vertical.train_vertical_plaintext`, the reference that the
secret-shared training matches to ~1e-5 in the weights; in a deployment each coalition is one
more secure training run and only the coalition's score is revealed.

Shapley values (:func:`shapley_values`) are exact: all ``2^p`` coalitions are valued once, so
the cost is ``2^p`` trainings; :data:`MAX_EXACT_PLAYERS` (6) bounds it. No approximation (e.g.
permutation sampling) is implemented for more parties.

Fee rule (:func:`fee_shares`): negative and zero Shapley values get nothing; the rest is split
in proportion to the positive values, in whole units (basis points by default) by the
largest-remainder method (ties to the lower party index), so the shares always sum to the fee
exactly. If no party has a positive value the fee is split equally.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from privledger.protocols.fl.vertical import (
    VerticalConfig,
    predict_vertical_plaintext,
    train_vertical_plaintext,
)

F64 = npt.NDArray[np.float64]
Coalition = frozenset[int]
Metric = Literal["log_likelihood", "auc"]

MAX_EXACT_PLAYERS: Final = 6
BASIS_POINTS: Final = 10_000


def roc_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    label = np.asarray(labels).reshape(-1).astype(bool)
    positives, negatives = int(label.sum()), int((~label).sum())
    if score.size != label.size or positives == 0 or negatives == 0:
        raise ValueError("need one score per label and both classes present")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(score.size)
    sorted_scores = score[order]
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [score.size]])
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = 0.5 * (start + end + 1)  # average of ranks start+1 .. end
    u = float(ranks[label].sum()) - positives * (positives + 1) / 2
    return u / (positives * negatives)


def shapley_values(players: Sequence[int], value: Callable[[Coalition], float]) -> dict[int, float]:
    """Exact Shapley values over ``p`` players.

    ``phi_i = sum over S without i of |S|! (p - |S| - 1)! / p! * (v(S + i) - v(S))``.
    """
    if len(set(players)) != len(players) or not players:
        raise ValueError("players must be distinct and not empty")
    count = len(players)
    if count > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact Shapley takes at most {MAX_EXACT_PLAYERS} players")
    values = {
        frozenset(subset): value(frozenset(subset))
        for size in range(count + 1)
        for subset in itertools.combinations(players, size)
    }
    result = {}
    for player in players:
        others = [p for p in players if p != player]
        total = 0.0
        for size in range(count):
            weight = math.factorial(size) * math.factorial(count - size - 1) / math.factorial(count)
            for subset in itertools.combinations(others, size):
                coalition = frozenset(subset)
                total += weight * (values[coalition | {player}] - values[coalition])
        result[player] = total
    return result


def fee_shares(contributions: Mapping[int, float], fee: int = BASIS_POINTS) -> dict[int, int]:
    """Whole-unit shares of ``fee`` by the rule in the module docstring; they sum to ``fee``."""
    if fee < 0 or not contributions:
        raise ValueError("need a non-negative fee and at least one party")
    players = sorted(contributions)
    positive = {p: max(contributions[p], 0.0) for p in players}
    total = sum(positive.values())
    if total <= 0:
        positive, total = dict.fromkeys(players, 1.0), float(len(players))
    exact = {p: fee * positive[p] / total for p in players}
    shares = {p: math.floor(exact[p]) for p in players}
    leftover = fee - sum(shares.values())
    by_remainder = sorted(players, key=lambda p: (-(exact[p] - shares[p]), p))
    for player in by_remainder[:leftover]:
        shares[player] += 1
    return shares


def mean_log_likelihood(probabilities: F64, labels: F64) -> float:
    """Mean log-likelihood of labels in {0, 1} (probabilities clipped to [1e-12, 1 - 1e-12])."""
    p = np.clip(probabilities, 1e-12, 1.0 - 1e-12)
    return float(np.mean(labels * np.log(p) + (1.0 - labels) * np.log1p(-p)))


def vertical_coalition_value(
    train_parts: Sequence[F64],
    train_labels: F64,
    test_parts: Sequence[F64],
    test_labels: F64,
    *,
    metric: Metric = "log_likelihood",
    config: VerticalConfig | None = None,
) -> Callable[[Coalition], float]:
    """``v(S)``: test ``metric`` of vertical LR retrained on the columns of the parties in ``S``.

    The intercept column rides with the labels (a zero-column part), so every coalition --
    including the empty one -- trains with it.
    """
    if metric not in ("log_likelihood", "auc"):
        raise ValueError(f"unknown metric {metric!r}")
    rows, test_rows = train_labels.size, test_labels.size

    def value(coalition: Coalition) -> float:
        members = sorted(coalition)
        train = [np.zeros((rows, 0)), *(train_parts[m] for m in members)]
        test = [np.zeros((test_rows, 0)), *(test_parts[m] for m in members)]
        models = train_vertical_plaintext(train, train_labels, label_holder=0, config=config)
        probabilities = predict_vertical_plaintext(test, models)
        if metric == "auc":
            return roc_auc(probabilities, test_labels)
        return mean_log_likelihood(probabilities, test_labels)

    return value
