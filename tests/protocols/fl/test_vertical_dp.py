"""Differential privacy of secret-shared vertical LR: clipping, the noise inside the shares, and
the run without noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privledger.protocols.fl.vertical import (
    PartyModel,
    VerticalConfig,
    VerticalDp,
    clip_rows,
    piecewise_sigmoid,
    train_vertical_plaintext,
    train_vertical_ss,
)
from privledger.protocols.mpc.dealer import local_mesh


def _parts(rows: int, widths: tuple[int, ...], seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(scale=2.0, size=(rows, width)) for width in widths]
    labels = (rng.random(rows) < 0.5).astype(float)
    return parts, labels


def _secure(
    parts: list[np.ndarray], labels: np.ndarray, config: VerticalConfig
) -> list[PartyModel]:
    with local_mesh(len(parts)) as mesh:
        return mesh.run(
            lambda p: train_vertical_ss(
                p, parts[p.index], labels if p.index == 0 else None, config=config
            )
        )


def _flat(models: list[PartyModel]) -> np.ndarray:
    return np.concatenate([np.append(m.weights, m.intercept or ()) for m in models])


def test_every_row_s_gradient_is_within_the_sensitivity() -> None:
    dp = VerticalDp(noise_multiplier=1.0, clip_norm=1.5)
    parts, labels = _parts(500, (4, 3, 5), seed=1)
    clipped = [clip_rows(part, dp.block_norm(3)) for part in parts]
    rows = np.hstack([*clipped, np.ones((500, 1))])  # the label holder's intercept column
    assert np.max(np.linalg.norm(np.hstack(clipped), axis=1)) <= dp.clip_norm + 1e-12
    weights = np.random.default_rng(2).normal(size=rows.shape[1])
    residuals = piecewise_sigmoid(rows @ weights) - labels
    gradients = rows * residuals[:, None]  # one row's gradient x r, per row
    assert np.max(np.linalg.norm(gradients, axis=1)) <= dp.sensitivity / 2 + 1e-12
    # replacing a row by any other moves the sum by at most the sensitivity
    assert np.max(np.linalg.norm(gradients[:, None] - gradients[None], axis=2)) <= dp.sensitivity
    short = np.array([[0.1, 0.2]])
    np.testing.assert_array_equal(clip_rows(short, 1.0), short)  # within the bound: unchanged


def test_the_shared_noise_has_the_calibrated_variance() -> None:
    """One epoch from zero weights gives ``w = -(lr / n) (X^T r + noise)``: against the
    noise-free reference the noise is ``n / lr`` times the weight gap, and its standard
    deviation must be the sum of the two parties' shares, ``sqrt(2) z S``."""
    rows = 40
    parts, labels = _parts(rows, (150, 150), seed=3)
    dp = VerticalDp(noise_multiplier=0.02, clip_norm=3.0)
    config = VerticalConfig(epochs=1, learning_rate=1.0, l2=0.0, dp=dp)
    reference = _flat(train_vertical_plaintext(parts, labels, config=config))
    noise = (reference - _flat(_secure(parts, labels, config))) * rows
    expected = math.sqrt(2) * dp.party_noise_std(2)
    assert dp.party_noise_std(2) == pytest.approx(dp.noise_multiplier * dp.sensitivity)
    # 301 samples: the sample standard deviation is within 3.5 % (1 sigma) of the true one
    assert abs(float(np.std(noise)) / expected - 1) < 0.15
    assert abs(float(np.mean(noise))) < 4 * expected / math.sqrt(noise.size)


def test_without_noise_the_private_run_is_the_non_private_one() -> None:
    parts, labels = _parts(60, (3, 2), seed=4)
    plain = VerticalConfig(epochs=20)
    # a bound no row reaches: the clipped rows are the rows, bit for bit
    unclipped = VerticalConfig(epochs=20, dp=VerticalDp(noise_multiplier=0.0, clip_norm=1e6))
    np.testing.assert_array_equal(
        _flat(train_vertical_plaintext(parts, labels, config=unclipped)),
        _flat(train_vertical_plaintext(parts, labels, config=plain)),
    )
    # and the secure run adds nothing: it matches the non-private reference to the fixed-point
    # rounding, as the non-private secure run does
    secure = _flat(_secure(parts, labels, unclipped))
    reference = _flat(train_vertical_plaintext(parts, labels, config=plain))
    np.testing.assert_allclose(secure, reference, atol=1e-4)


def test_noisy_runs_differ_and_bad_parameters_are_refused() -> None:
    parts, labels = _parts(30, (2, 2), seed=5)
    config = VerticalConfig(epochs=3, dp=VerticalDp(noise_multiplier=1.0, clip_norm=1.0))
    first, second = _flat(_secure(parts, labels, config)), _flat(_secure(parts, labels, config))
    assert not np.allclose(first, second, atol=1e-3)  # fresh noise each training
    for multiplier, clip in ((-1.0, 1.0), (1.0, 0.0), (1000.0, 2.0)):
        with pytest.raises(ValueError):
            VerticalDp(noise_multiplier=multiplier, clip_norm=clip)
