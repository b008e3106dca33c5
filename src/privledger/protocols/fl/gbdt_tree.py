"""Trees of :mod:`.gbdt`: their shapes, each party's part, the split gain, and the merged model.

Nodes are numbered as in a heap (root 0, children ``2v + 1`` left and ``2v + 2`` right). Every
party knows each tree's *shape* (:class:`TreeShape`: which nodes split and which are leaves);
a party keeps the thresholds of its own splits (:class:`Split`), the label holder also the owner
of every split and the leaf values. A party evaluates its part of a tree on some rows with
:func:`leaf_masks`: per row, the leaves consistent with its own splits, as a bit mask (bit ``i``
for the ``i``-th leaf of the shape); the label holder intersects the parties' masks and gets one
leaf per row. :class:`MergedModel` is the plaintext model after export (every threshold
revealed), with :meth:`MergedModel.to_lightgbm` for deployment.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]

MAX_DEPTH: Final = 6  # 2^6 leaves fit one uint64 mask
_NOT_IN_NAMES: Final = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class TreeShape:
    """Which nodes of a tree split and which are leaves (heap numbering, both sorted)."""

    internal: tuple[int, ...]
    leaves: tuple[int, ...]

    def to_json(self) -> dict[str, list[int]]:
        return {"internal": list(self.internal), "leaves": list(self.leaves)}

    @classmethod
    def from_json(cls, raw: object) -> TreeShape:
        if not isinstance(raw, dict):
            raise ValueError("a tree shape is an object")
        internal = tuple(sorted(int(v) for v in raw["internal"]))
        leaves = tuple(sorted(int(v) for v in raw["leaves"]))
        shape = cls(internal, leaves)
        shape.check()
        return shape

    def check(self) -> None:
        """Refuse anything but a binary tree of depth <= :data:`MAX_DEPTH` rooted at 0."""
        expected = {0}
        internal = set(self.internal)
        for node in sorted(internal | set(self.leaves)):
            if node not in expected or node >= 2 ** (MAX_DEPTH + 1) - 1:
                raise ValueError(f"node {node} is not a reachable node of a tree")
            if node in internal:
                expected |= {2 * node + 1, 2 * node + 2}
        if expected != internal | set(self.leaves) or internal & set(self.leaves):
            raise ValueError("a tree shape must have exactly the children of its splits as nodes")


@dataclass(frozen=True)
class Split:
    """One split, known to its owner only: left when ``features[:, column] <= threshold``."""

    column: int
    threshold: float


def leaf_masks(shape: TreeShape, splits: Mapping[int, Split], features: F64) -> U64:
    """Per row, the bit mask of the leaves consistent with ``splits`` (this party's own).

    A split this party does not own lets the row go both ways.
    """
    rows = features.shape[0]
    reach = {0: np.ones(rows, dtype=bool)}
    for node in shape.internal:  # sorted: a parent comes before its children
        here = reach.pop(node)
        split = splits.get(node)
        if split is None:
            reach[2 * node + 1] = reach[2 * node + 2] = here
        else:
            left = features[:, split.column] <= split.threshold
            reach[2 * node + 1] = here & left
            reach[2 * node + 2] = here & ~left
    masks = np.zeros(rows, dtype=np.uint64)
    for bit, leaf in enumerate(shape.leaves):
        masks |= reach[leaf].astype(np.uint64) << np.uint64(bit)
    return masks


def leaf_index(masks: U64) -> npt.NDArray[np.intp]:
    """The leaf of every row from the intersected masks (exactly one bit must be left)."""
    if np.any(masks == 0) or np.any(masks & (masks - np.uint64(1))):
        raise ValueError("the parties' leaf masks do not intersect in exactly one leaf")
    return np.log2(masks.astype(np.float64)).astype(np.intp)


@dataclass(frozen=True)
class SplitRule:
    """The regularised objective of XGBoost/LightGBM: leaf weight ``-G / (H + l2)`` and split
    gain ``G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2)`` (halved), with LightGBM's limits."""

    l2: float
    min_child_samples: int
    min_child_weight: float

    def weight(self, grad: float, hess: float) -> float:
        return -grad / (hess + self.l2)

    def gains(
        self,
        totals: tuple[float, float, int],
        grad_left: F64,
        hess_left: F64,
        count_left: F64 | None,
    ) -> F64:
        """The gain of every candidate split of a node (``-inf`` where a child is too small);
        ``count_left`` None: the candidates' owner kept only those whose sides are large
        enough."""
        grad, hess, count = totals
        grad_right, hess_right = grad - grad_left, hess - hess_left
        gain = 0.5 * (
            grad_left**2 / (hess_left + self.l2)
            + grad_right**2 / (hess_right + self.l2)
            - grad**2 / (hess + self.l2)
        )
        allowed = (hess_left >= self.min_child_weight) & (hess_right >= self.min_child_weight)
        if count_left is not None:
            allowed &= (count_left >= self.min_child_samples) & (
                count - count_left >= self.min_child_samples
            )
        return np.where(allowed, gain, -np.inf)


@dataclass(frozen=True)
class MergedModel:
    """The whole model in plaintext, after every party revealed its splits (export).

    ``splits[t][node]`` holds a column index into the concatenation of the parties' columns
    (party 0's first) and ``gains[t][node]`` the split's gain; ``leaf_values[t]`` follows
    ``shapes[t].leaves`` and already includes the learning rate; the raw score is
    ``base_score`` plus the leaf of every tree.
    """

    shapes: tuple[TreeShape, ...]
    splits: tuple[Mapping[int, Split], ...]
    gains: tuple[Mapping[int, float], ...]
    leaf_values: tuple[F64, ...]
    base_score: float
    feature_names: tuple[str, ...]

    def raw_scores(self, features: F64) -> F64:
        scores = np.full(features.shape[0], self.base_score)
        for shape, splits, values in zip(self.shapes, self.splits, self.leaf_values, strict=True):
            scores += values[leaf_index(leaf_masks(shape, splits, features))]
        return scores

    def predict(self, features: F64) -> F64:
        return np.asarray(1.0 / (1.0 + np.exp(-self.raw_scores(features))), dtype=np.float64)

    def to_lightgbm(self) -> str:
        """The model as LightGBM's text format (``lightgbm.Booster(model_str=...)`` loads it);
        the base score is folded into the first tree's leaves, as LightGBM's own
        ``boost_from_average`` does."""
        trees = [
            _lightgbm_tree(t, shape, splits, gains, values + (self.base_score if t == 0 else 0.0))
            for t, (shape, splits, gains, values) in enumerate(
                zip(self.shapes, self.splits, self.gains, self.leaf_values, strict=True)
            )
        ]
        header = [
            "tree",
            "version=v4",
            "num_class=1",
            "num_tree_per_iteration=1",
            "label_index=0",
            f"max_feature_idx={len(self.feature_names) - 1}",
            "objective=binary sigmoid:1",
            "feature_names=" + " ".join(self.feature_names),
            "feature_infos=" + " ".join("none" for _ in self.feature_names),
            "tree_sizes=" + " ".join(str(len(tree.encode()) + 1) for tree in trees),
            "",
        ]
        return "\n".join(header) + "\n" + "\n".join(trees) + "\nend of trees\n"


def feature_names(columns: Sequence[Sequence[str]], parties: Sequence[str]) -> tuple[str, ...]:
    """LightGBM feature names of every party's columns (party 0's first): each column's name with
    anything but letters, digits, ``_``, ``.`` and ``-`` replaced by ``_`` (LightGBM's text
    separates names by spaces and refuses JSON's special characters), prefixed by its party's
    name (``party.column``) where two parties share a name, and suffixed ``_2``, ``_3``, ...
    where names still clash."""
    clean = [[_NOT_IN_NAMES.sub("_", name) for name in names] for names in columns]
    shared = Counter(name for names in clean for name in set(names))
    wanted = [
        f"{_NOT_IN_NAMES.sub('_', party)}.{name}" if shared[name] > 1 else name
        for party, names in zip(parties, clean, strict=True)
        for name in names
    ]
    planned, taken = set(wanted), set[str]()
    for k, name in enumerate(wanted):
        unique, suffix = name, 2
        while unique in taken or (unique != name and unique in planned):
            unique, suffix = f"{name}_{suffix}", suffix + 1
        wanted[k] = unique
        taken.add(unique)
    return tuple(wanted)


def _lightgbm_tree(
    index: int,
    shape: TreeShape,
    splits: Mapping[int, Split],
    gains: Mapping[int, float],
    values: F64,
) -> str:
    def number(values: Sequence[float]) -> str:
        return " ".join(repr(float(v)) for v in values)

    lines = [f"Tree={index}", f"num_leaves={len(shape.leaves)}", "num_cat=0"]
    if shape.internal:
        position = {node: k for k, node in enumerate(shape.internal)}
        leaf_position = {node: k for k, node in enumerate(shape.leaves)}

        def child(node: int) -> int:
            return position[node] if node in position else -leaf_position[node] - 1

        ordered = [splits[node] for node in shape.internal]
        lines += [
            "split_feature=" + " ".join(str(s.column) for s in ordered),
            "split_gain=" + number([gains[node] for node in shape.internal]),
            "threshold=" + number([s.threshold for s in ordered]),
            "decision_type=" + " ".join("2" for _ in ordered),
            "left_child=" + " ".join(str(child(2 * v + 1)) for v in shape.internal),
            "right_child=" + " ".join(str(child(2 * v + 2)) for v in shape.internal),
        ]
    lines += ["leaf_value=" + number(values.tolist()), "is_linear=0", "shrinkage=1", "", ""]
    return "\n".join(lines)
