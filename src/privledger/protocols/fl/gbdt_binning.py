"""Local quantile binning of one party's feature columns, for :mod:`.gbdt`.

Each party bins its own columns and never shows the cut points to anyone: a column's cut points
are the distinct quantiles at ``k / max_bins`` (``k = 1 .. max_bins - 1``) of its training
values, dropping any at or above the column's maximum (nothing would go right of it). A value
``x`` falls in bin ``b`` = the number of cut points below ``x``, so ``bin(x) <= b`` exactly when
``x <= cuts[b]``: the split "bin <= b" is the threshold split ``x <= cuts[b]``, LightGBM's
convention (its ``decision_type`` 2: left when ``<=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]

MAX_BINS: Final = 256  # bin indices are stored as uint8


def check_features(features: npt.ArrayLike) -> F64:
    """The features as a finite 2-D float64 array (missing values are not supported)."""
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("features must be a 2-D array (rows x own columns)")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("features must be finite (missing values are not supported)")
    return matrix


@dataclass(frozen=True)
class FeatureBins:
    """The cut points of every column of one party (kept by that party)."""

    cuts: tuple[F64, ...]

    @classmethod
    def fit(cls, features: npt.ArrayLike, max_bins: int) -> FeatureBins:
        if not 2 <= max_bins <= MAX_BINS:
            raise ValueError(f"max_bins must be in 2..{MAX_BINS}")
        matrix = check_features(features)
        levels = np.arange(1, max_bins) / max_bins
        cuts = []
        for column in matrix.T:
            quantiles = np.unique(np.quantile(column, levels))
            cuts.append(np.asarray(quantiles[quantiles < column.max()], dtype=np.float64))
        return cls(tuple(cuts))

    @property
    def widths(self) -> tuple[int, ...]:
        """Bins per column (cut points + 1)."""
        return tuple(cut.size + 1 for cut in self.cuts)

    def transform(self, features: npt.ArrayLike) -> U8:
        """The bin index of every value, ``rows x columns``."""
        matrix = check_features(features)
        if matrix.shape[1] != len(self.cuts):
            raise ValueError(f"expected {len(self.cuts)} columns, got {matrix.shape[1]}")
        bins = np.empty(matrix.shape, dtype=np.uint8)
        for j, cut in enumerate(self.cuts):
            bins[:, j] = np.searchsorted(cut, matrix[:, j], side="left")
        return bins

    def threshold(self, column: int, last_left_bin: int) -> float:
        """The value threshold of the split "bin <= last_left_bin" of ``column``."""
        return float(self.cuts[column][last_left_bin])
