"""Vertical federated logistic regression: parties hold different columns of the same rows.

Two or three parties hold feature columns of the same customers, aligned beforehand by PSI (row
``k`` is the same customer everywhere); one of them, the *label holder*, also holds the labels
and the intercept. During training no party sees another party's columns, nor any weight,
partial score, residual, gradient or label: all of them stay secret-shared (SecretFlow SS-LR
style), and every value opened during training is masked by dealer randomness.

Secret-shared training (:func:`train_vertical_ss`), full-batch gradient descent on
``mean(log-loss) + l2/2 |w|^2`` (intercept not penalised), run by every party of an
:mod:`~privledger.protocols.mpc.sharing` mesh with its trusted dealer. The joint design matrix
is a trivial sharing (each party's own encoded columns, zeros elsewhere) and the weight vector
``w`` of all parties is shared, starting at zero. One epoch:

1. Shares of ``z = X w``: an elementwise Beaver product of the design with ``w`` (repeated per
   row), summed per row and truncated (fixed point, ``f`` fractional bits, default 16).
2. ``s = sigma(z)`` with the piecewise-linear sigmoid :func:`piecewise_sigmoid` -- linear
   interpolation of the logistic function at the knots -4, -2, 0, 2, 4, and 0 / 1 beyond -6 / 6
   (largest error 0.041): written as ``sum_k a_k relu(z - c_k)``, each ``relu`` is a secure
   comparison (:func:`~privledger.protocols.mpc.compare.greater_equal`) and a Beaver product,
   followed by one truncation.
3. The label holder subtracts its labels from its share: shares of the residual ``r = s - y``.
4. Shares of the gradient ``g = X^T r`` (Beaver products, column sums, truncation) and of the
   update ``w <- w (1 - lr l2) - (lr / n) g`` (public constants with 28 fractional bits, one
   truncation). Truncation is exact and perfectly hiding (:func:`.mpc.sharing.truncate`).

Output. :func:`train_vertical_ss` opens each party's own weights (and the intercept, at the
label holder) to that party alone, once, at the end; :func:`train_vertical_ss_shared` opens
nothing and returns a :class:`SharedModel` for :func:`predict_vertical_shared` or, through
:class:`SharedLrScorer`, joint prediction (:mod:`.joint`). :func:`commit_parts` then has each
party commit to its shares (a salted sha256) and exchange the commitments, which a registered
model binds (the node's default task output is the shared model).

What a party learns: with :func:`train_vertical_ss_shared`, nothing beyond its own columns and
the row count, column counts and parameters (the requester of a prediction learns its
probabilities). With :func:`train_vertical_ss`, additionally its own final weights ``w_i`` --
at the optimum ``w_i ~ -X_i^T r / (n l2)``, i.e. ``d_i`` linear combinations of the final
residuals. **That is a label leak when a party's columns are adversarial**: an indicator column
for one row yields the sign of that row's ``y - s`` (``tests/privacy/test_vertical_fl.py``
shows it). A data owner that does not trust its partners' columns keeps the model shared. The
old protocol opened ``X_i^T r`` to party ``i`` every epoch (every target label after one
epoch); that is gone. The dealer's trust and the semi-honest model are those of
:mod:`.mpc.sharing`. :func:`train_vertical_plaintext` runs the same algorithm in float64 -- the
reference that the secure weights match to about 1e-5 (fixed-point rounding only; the sigmoid
coefficients carry 8 more fractional bits so their rounding does not bias every epoch).

Differential privacy (``VerticalConfig.dp``, :class:`VerticalDp`): DP-SGD (Abadi et al., CCS
2016) with full batches, computed inside the secret sharing. Every party clips each row of its own
columns to ``C / sqrt(k)`` (``k`` parties) before it encodes them, so a whole row has norm at most
``C``; with the intercept's column of ones and ``|r| = |sigma(z) - y| <= 1`` (the piecewise sigmoid
lies in [0, 1]), one row's gradient ``x r`` has norm at most ``sqrt(C^2 + 1)`` -- the bounded
feature norm that makes a generalised linear model's gradient bounded (Song, Chaudhuri, Sarwate,
GlobalSIP 2013), which spares the per-row norm and division a clipped gradient would cost in MPC.
Replacing one row by another therefore moves the gradient sum ``X^T r`` by at most
``S = 2 sqrt(C^2 + 1)``. Every epoch each party adds to its share of ``X^T r`` fresh Gaussian noise
of standard deviation ``z S / sqrt(k - 1)`` per coordinate (drawn from a :mod:`secrets`-seeded
generator, kept to itself): the noise is part of the shared value, no party knows its sum, and
the noise of the ``k - 1`` parties that one party does not control has standard deviation ``z S``.
Each epoch is thus a Gaussian mechanism of noise multiplier ``z`` on the gradient sum, and the
weights are its post-processing; ``E`` epochs compose ``E`` of them, accounted for by
:func:`privledger.protocols.fl.dp.epsilon` (Rényi DP, dp-accounting).

What that protects: the model -- the shares, the probabilities any prediction opens, and the
weights ``output: weights`` opens -- is ``(epsilon, delta)``-DP for one row (a customer's
features at every party and label) replaced by another, against any one party, the requester of a
prediction included. The indicator-column attack on opened weights above is bounded by it (a label
change alone moves the sum by ``S / 2``: a label is protected at the epsilon of ``2 z``). What
it does not protect: the row count and the aligned ids (PSI), each party's own column means and
scales (it standardises locally and keeps them), and scores opened on other rows (the held-out
rows of the contributions, any prediction's batch: a prediction describes the row it scores). Two
colluding parties of three subtract their noise: the third's alone is ``1/sqrt(2)`` of it. The
noise is drawn in floating point and rounded to ``2^-f`` (the floating-point attacks on textbook
samplers, Mironov CCS 2012, are not addressed), and the fixed-point sigmoid can stray outside
[0, 1] by about ``2^-f``, i.e. the sensitivity bound holds to that rounding. The plaintext
reference clips the same way and adds no noise.

Paillier variant (:func:`train_vertical_paillier`), the FATE-style hetero LR for comparison, in
one process: an *arbiter* holds the Paillier key (``phe``, gmpy2-backed); non-label parties send
``[[X_j w_j]]``; the label holder forms ``[[4 r]] = [[z]] + 2 - 4y`` with the Taylor sigmoid
``0.5 + z/4`` (Paillier cannot compare, so no piecewise sigmoid); each party computes
``[[X_i^T 4r]]`` homomorphically, adds a random mask of 2^80 (statistical hiding), lets the arbiter
decrypt and removes its mask. The arbiter sees only masked gradients; an arbiter colluding with
the label holder learns the other parties' partial scores.

Joint prediction (:func:`predict_vertical`): each party scores its own columns of the new rows;
the sum is secret-shared and opened to the requester only, which applies the exact sigmoid.
:func:`predict_vertical_shared` does the same with a shared model (``X w`` on shares).
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from privledger.protocols.mpc.compare import greater_equal
from privledger.protocols.mpc.ring import DEFAULT_FRAC_BITS, U64, decode_fixed, encode_fixed
from privledger.protocols.mpc.sharing import (
    MpcError,
    Party,
    agree,
    bits_to_arith,
    mul,
    open_to,
    session,
    share_sum,
    truncate,
)

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
SigmoidKind = Literal["piecewise", "taylor"]

SIGMOID_KNOTS: Final = (-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0)
_MAX_PARTIES: Final = 3
_EXTRA_COEFFICIENT_BITS: Final = 8
_PAILLIER_MASK_BITS: Final = 80
# fractional bits of the public step constants (lr / n and 1 - lr l2): 2^-28 relative error
_STEP_BITS: Final = 28
# every truncation's |x| < 2^60 (truncation is exact and perfectly hiding below 2^62)
_BOUND_BITS: Final = 60
# the largest noise standard deviation a party adds: 16 of them stay below 2^15, so with f = 16,
# the step constants' 28 bits and lr / n <= 1 the noisy update keeps below 2^_BOUND_BITS
MAX_DP_NOISE: Final = 2048.0


def _knot_values() -> F64:
    values = 1.0 / (1.0 + np.exp(-np.asarray(SIGMOID_KNOTS)))
    values[0], values[-1] = 0.0, 1.0
    return np.asarray(values, dtype=np.float64)


def piecewise_sigmoid(z: F64) -> F64:
    """Linear interpolation of the logistic function at :data:`SIGMOID_KNOTS`, 0 / 1 outside."""
    return np.asarray(np.interp(z, SIGMOID_KNOTS, _knot_values()), dtype=np.float64)


def taylor_sigmoid(z: F64) -> F64:
    """First-order Taylor expansion at zero, ``0.5 + z/4`` (the Paillier variant's sigmoid)."""
    return 0.5 + 0.25 * z


def _relu_coefficients() -> F64:
    """``a_k`` with ``piecewise_sigmoid(z) = sum_k a_k relu(z - c_k)`` (the first value is 0)."""
    slopes = np.diff(_knot_values()) / np.diff(SIGMOID_KNOTS)
    return np.diff(np.concatenate([[0.0], slopes, [0.0]]))


@dataclass(frozen=True)
class VerticalDp:
    """Differential privacy of the trained model (module docstring): every row's features are
    clipped to the L2 norm ``clip_norm``, and every epoch the parties add Gaussian noise of
    ``noise_multiplier`` times the gradient's sensitivity, each its own share of it.

    ``noise_multiplier`` 0 adds no noise (the rows are still clipped): the non-private run."""

    noise_multiplier: float
    clip_norm: float

    def __post_init__(self) -> None:
        if not (self.noise_multiplier >= 0 and self.clip_norm > 0):
            raise ValueError("need noise_multiplier >= 0 and clip_norm > 0")
        if self.noise_multiplier * self.sensitivity > MAX_DP_NOISE:
            raise ValueError(
                f"noise_multiplier * 2 sqrt(clip_norm^2 + 1) is at most {MAX_DP_NOISE:g} "
                "(the fixed-point range of the shared gradient)"
            )

    @property
    def sensitivity(self) -> float:
        """How far one row replaced by another moves the gradient sum ``X^T r``: its gradient
        ``x r`` (intercept included) has norm at most ``sqrt(clip_norm^2 + 1)``, as ``|r| <= 1``."""
        return 2.0 * math.sqrt(self.clip_norm**2 + 1.0)

    def block_norm(self, parties: int) -> float:
        """The L2 bound of each party's own columns of a row, so that a whole row's is
        ``clip_norm``: ``clip_norm / sqrt(parties)``."""
        return self.clip_norm / math.sqrt(parties)

    def party_noise_std(self, parties: int) -> float:
        """The standard deviation of the noise each of ``parties`` parties adds per gradient
        coordinate and epoch: any ``parties - 1`` of them -- all but the one that watches --
        sum to ``noise_multiplier * sensitivity``."""
        return self.noise_multiplier * self.sensitivity / math.sqrt(parties - 1)


def clip_rows(features: F64, bound: float) -> F64:
    """Each row scaled down to L2 norm ``bound`` if it is longer (rows within it unchanged)."""
    matrix = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    factors = np.minimum(1.0, bound / np.maximum(norms, np.finfo(np.float64).tiny))
    return np.asarray(matrix * factors, dtype=np.float64)


def noise_source() -> np.random.Generator:
    """A Gaussian noise source seeded from the operating system's CSPRNG, one per training."""
    return np.random.Generator(np.random.PCG64(secrets.randbits(128)))


@dataclass(frozen=True)
class VerticalConfig:
    """Training parameters, the same for every party (checked at the start).

    ``l2`` defaults to ``1 / n``: scikit-learn's ``LogisticRegression(C=1)`` objective.
    """

    epochs: int = 200
    learning_rate: float = 1.0
    l2: float | None = None
    frac_bits: int = DEFAULT_FRAC_BITS
    dp: VerticalDp | None = None

    def penalty(self, rows: int) -> float:
        return 1.0 / rows if self.l2 is None else self.l2


@dataclass(frozen=True)
class PartyModel:
    """One party's part of the model: weights of its own columns, the intercept if it has one."""

    weights: F64
    intercept: float | None = None

    def scores(self, features: F64) -> F64:
        """This party's partial scores ``X_i w_i (+ intercept)`` for its columns of some rows."""
        partial = np.asarray(features, dtype=np.float64) @ self.weights
        return partial + self.intercept if self.intercept is not None else partial


def _design(features: F64, with_intercept: bool) -> F64:
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("features must be a 2-D array (rows x own columns)")
    if with_intercept:
        matrix = np.hstack([matrix, np.ones((matrix.shape[0], 1))])
    return matrix


def _gradient_step(
    params: F64, gradient_sum: F64, rows: int, l2: float, lr: float, with_intercept: bool
) -> F64:
    penalty = l2 * params
    if with_intercept:
        penalty[-1] = 0.0
    return params - lr * (gradient_sum / rows + penalty)


def _to_model(params: F64, with_intercept: bool) -> PartyModel:
    if with_intercept:
        return PartyModel(params[:-1].copy(), float(params[-1]))
    return PartyModel(params.copy())


# --- plaintext reference ----------------------------------------------------------------------


def train_vertical_plaintext(
    feature_parts: Sequence[F64],
    labels: F64,
    *,
    label_holder: int = 0,
    config: VerticalConfig | None = None,
    sigmoid: SigmoidKind = "piecewise",
) -> list[PartyModel]:
    """The same gradient descent in float64 on the pooled columns (the reference run); with
    ``config.dp``, on rows clipped as the secure run clips them, without noise."""
    config = config or VerticalConfig()
    link = piecewise_sigmoid if sigmoid == "piecewise" else taylor_sigmoid
    if config.dp is not None:
        bound = config.dp.block_norm(len(feature_parts))
        feature_parts = [clip_rows(part, bound) for part in feature_parts]
    designs = [_design(part, k == label_holder) for k, part in enumerate(feature_parts)]
    rows = labels.size
    l2 = config.penalty(rows)
    params = [np.zeros(design.shape[1]) for design in designs]
    for _ in range(config.epochs):
        z = sum((design @ w for design, w in zip(designs, params, strict=True)), np.zeros(rows))
        residual = link(z) - labels
        params = [
            _gradient_step(
                w, design.T @ residual, rows, l2, config.learning_rate, k == label_holder
            )
            for k, (design, w) in enumerate(zip(designs, params, strict=True))
        ]
    return [_to_model(w, k == label_holder) for k, w in enumerate(params)]


def predict_vertical_plaintext(feature_parts: Sequence[F64], models: Sequence[PartyModel]) -> F64:
    """Probabilities from every party's columns and model, in the clear (the reference)."""
    scores = sum(
        (model.scores(part) for part, model in zip(feature_parts, models, strict=True)),
        np.zeros(np.asarray(feature_parts[0]).shape[0]),
    )
    return np.asarray(1.0 / (1.0 + np.exp(-scores)), dtype=np.float64)


# --- secret-shared training -------------------------------------------------------------------


def secure_piecewise_sigmoid(party: Party, group: tuple[int, ...], z: U64, frac_bits: int) -> U64:
    """Shares of :func:`piecewise_sigmoid` of the shared fixed-point vector ``z``."""
    knots = np.asarray(SIGMOID_KNOTS)
    count = z.size
    tiled = np.tile(z, knots.size)
    thresholds = np.repeat(encode_fixed(knots, frac_bits), count)
    above = bits_to_arith(
        party, group, greater_equal(party, group, tiled, thresholds, holder=group[0])
    )
    shifted = tiled - thresholds if party.index == group[0] else tiled
    relus = mul(party, group, above, shifted)  # bits are integers: no truncation needed
    # finer coefficients: a rounding error in a_k would bias sigma by ~|z| 2^-f, every epoch
    coefficient_bits = frac_bits + _EXTRA_COEFFICIENT_BITS
    coefficients = np.repeat(encode_fixed(_relu_coefficients(), coefficient_bits), count)
    weighted = (relus * coefficients).reshape(knots.size, count).sum(axis=0, dtype=np.uint64)
    return truncate(
        party, group, weighted, coefficient_bits, bound_bits=frac_bits + coefficient_bits + 1
    )


@dataclass(frozen=True)
class SharedModel:
    """One party's additive shares of *every* weight of a secret-shared model (nobody holds a
    weight in the clear); :func:`predict_vertical_shared` scores with it."""

    shares: U64
    widths: tuple[int, ...]
    group: tuple[int, ...]
    frac_bits: int

    def to_json(self) -> dict[str, object]:
        return {
            "shares": self.shares.astype("<u8").tobytes().hex(),
            "widths": list(self.widths),
            "group": list(self.group),
            "frac_bits": self.frac_bits,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SharedModel:
        widths = tuple(int(w) for w in data["widths"])  # type: ignore[attr-defined]
        shares = np.frombuffer(bytes.fromhex(str(data["shares"])), "<u8").astype(np.uint64)
        if shares.size != sum(widths):
            raise ValueError("the shares do not match the model's widths")
        group = tuple(int(member) for member in data["group"])  # type: ignore[attr-defined]
        return cls(shares, widths, group, int(str(data["frac_bits"])))


def commit_parts(party: Party, model: SharedModel) -> tuple[bytes, tuple[bytes, ...]]:
    """Each party commits to its own shares, ``sha256(salt || shares)`` with a fresh 32-byte
    salt, and the group exchanges the commitments: returns this party's salt and every member's
    commitment in group order (equal at every party), which a registered model binds."""
    salt = secrets.token_bytes(32)
    mine = hashlib.sha256(salt + model.shares.astype("<u8").tobytes()).digest()
    with session(party, "vertical-commit"):
        for member in model.group:
            if member != party.index:  # the commitments complete every member's model part
                party.delivering(member)
        theirs = party.exchange(model.group, dict.fromkeys(model.group, mine))
    commitments = []
    for member in model.group:
        commitment = mine if member == party.index else theirs[member]
        if len(commitment) != 32:
            raise MpcError(f"party {member} sent a malformed commitment")
        commitments.append(commitment)
    return salt, tuple(commitments)


@dataclass(frozen=True)
class SharedLrScorer:
    """One party's side of a shared logistic-regression model in joint prediction
    (:class:`~privledger.protocols.fl.joint.JointScorer`): scores are the logits ``X w``."""

    model: SharedModel
    label_holder: int

    @property
    def group(self) -> tuple[int, ...]:
        return self.model.group

    @property
    def frac_bits(self) -> int:
        return self.model.frac_bits

    def shared_scores(self, party: Party, features: F64) -> U64:
        model = self.model
        design = _design(features, party.index == self.label_holder)
        agree(
            party,
            model.group,
            {
                "protocol": "fl/vertical-lr-scores/v1",
                "rows": design.shape[0],
                "widths": model.widths,
            },
        )
        if design.shape[1] != model.widths[model.group.index(party.index)]:
            raise ValueError("the features do not match this party's part of the model")
        columns = _own_columns(party, model.group, design, model.widths, model.frac_bits)
        return _shared_scores(
            party, model.group, columns, model.shares, design.shape[0], model.frac_bits
        )

    def score_at(self, probability: float) -> float:
        return math.log(probability / (1.0 - probability))

    def probability(self, scores: F64) -> F64:
        return np.asarray(1.0 / (1.0 + np.exp(-scores)), dtype=np.float64)


def train_vertical_ss(
    party: Party,
    features: F64,
    labels: F64 | None,
    *,
    label_holder: int = 0,
    config: VerticalConfig | None = None,
    group: Sequence[int] | None = None,
) -> PartyModel:
    """Train by secret sharing; every party of ``group`` (default: the whole mesh) calls this
    with its own columns -- a sub-group trains a coalition's model, e.g. for Shapley values.

    ``labels`` must be given by the label holder and only by it. Gradients, residuals and
    weights stay shared during training; at the end each party's own weights (and the
    intercept, at the label holder) are opened to it alone: the returned model part. See the
    module docstring for what those final weights reveal; :func:`train_vertical_ss_shared`
    keeps them shared.
    """
    group = _group(party, group)
    with session(party, "vertical-lr"):  # a refusal below closes the channels: peers fail fast
        model = _train_shared(party, group, features, labels, label_holder, config, "own")
        holds_labels = party.index == label_holder
        offsets = np.cumsum([0, *model.widths])
        mine: U64 | None = None
        for k, member in enumerate(group):
            block = model.shares[offsets[k] : offsets[k + 1]]
            if member != party.index:  # the block opened to a member is its weights: its output
                party.delivering(member)
            opened = open_to(party, group, block, member)
            if opened is not None:
                mine = opened
        assert mine is not None
    return _to_model(decode_fixed(mine, model.frac_bits), holds_labels)


def train_vertical_ss_shared(
    party: Party,
    features: F64,
    labels: F64 | None,
    *,
    label_holder: int = 0,
    config: VerticalConfig | None = None,
    group: Sequence[int] | None = None,
) -> SharedModel:
    """As :func:`train_vertical_ss`, but no weight is ever opened: each party keeps shares of
    the whole model, for :func:`predict_vertical_shared` (nothing but predictions leaves)."""
    group = _group(party, group)
    with session(party, "vertical-lr"):
        return _train_shared(party, group, features, labels, label_holder, config, "shared")


def _train_shared(
    party: Party,
    group: tuple[int, ...],
    features: F64,
    labels: F64 | None,
    label_holder: int,
    config: VerticalConfig | None,
    reveal: str,
) -> SharedModel:
    config = config or VerticalConfig()
    if not 2 <= len(group) <= _MAX_PARTIES:
        raise ValueError(f"vertical training takes 2 to {_MAX_PARTIES} parties")
    if not 0 <= config.frac_bits <= 20:
        raise ValueError("frac_bits must be in 0..20 (products carry 2f bits)")
    if label_holder not in group:
        raise ValueError(f"the label holder {label_holder} is not in the mesh {group}")
    holds_labels = party.index == label_holder
    if holds_labels != (labels is not None):
        raise ValueError("labels must be passed by the label holder and only by it")
    f = config.frac_bits
    dp = config.dp
    if dp is not None:
        features = clip_rows(features, dp.block_norm(len(group)))
    design = _design(features, holds_labels)
    rows = design.shape[0]
    if dp is not None and config.learning_rate > rows:
        raise ValueError("differential privacy needs learning_rate <= rows (MAX_DP_NOISE)")
    widths = _exchange_widths(party, group, design.shape[1])
    agree(
        party,
        group,
        {
            "protocol": "fl/vertical-ss-lr/v3",
            "rows": rows,
            "widths": widths,
            "label_holder": label_holder,
            "epochs": config.epochs,
            "learning_rate": config.learning_rate,
            "l2": config.l2,
            "frac_bits": f,
            "reveal": reveal,
            "dp": None if dp is None else [dp.noise_multiplier, dp.clip_norm],
        },
    )
    total_width = sum(widths)
    offsets = np.cumsum([0, *widths])
    columns = _own_columns(party, group, design, widths, f)
    label_words = encode_fixed(labels, f) if labels is not None else None
    # w <- w (1 - lr l2) - (lr / n) g, with public constants of _STEP_BITS fractional bits;
    # the intercept (last column of the label holder's block) is not penalised
    l2 = config.penalty(rows)
    keep = np.full(total_width, 1.0 - config.learning_rate * l2)
    keep[offsets[group.index(label_holder) + 1] - 1] = 1.0
    keep_words = encode_fixed(keep, _STEP_BITS)
    step_words = encode_fixed(np.full(total_width, config.learning_rate / rows), _STEP_BITS)
    noise_std = 0.0 if dp is None else dp.party_noise_std(len(group))
    noise = noise_source() if noise_std > 0 else None
    weights = np.zeros(total_width, dtype=np.uint64)
    for _ in range(config.epochs):
        z = _shared_scores(party, group, columns, weights, rows, f)
        residual = secure_piecewise_sigmoid(party, group, z, f)
        if label_words is not None:
            residual = residual - label_words
        products = mul(party, group, columns, np.tile(residual, total_width))
        gradient = products.reshape(total_width, rows).sum(axis=1, dtype=np.uint64)
        gradient = truncate(party, group, gradient, f, bound_bits=_BOUND_BITS)
        if noise is not None:  # this party's share of the noise, added to its share of X^T r
            gradient = gradient + encode_fixed(noise.normal(0.0, noise_std, total_width), f)
        update = weights * keep_words - gradient * step_words
        weights = truncate(party, group, update, _STEP_BITS, bound_bits=_BOUND_BITS)
    logger.info("vertical SS-LR party %d: %d epochs on %d rows", party.index, config.epochs, rows)
    return SharedModel(weights, tuple(widths), group, f)


def _own_columns(
    party: Party, group: tuple[int, ...], design: F64, widths: Sequence[int], frac_bits: int
) -> U64:
    """Column-major blocks, one per party: this party's own encoded columns, zeros for the
    others' -- a trivial sharing of the joint design matrix."""
    rows = design.shape[0]
    columns = np.zeros(sum(widths) * rows, dtype=np.uint64)
    start = sum(widths[: group.index(party.index)]) * rows
    columns[start : start + design.size] = encode_fixed(design.T, frac_bits)
    return columns


def _shared_scores(
    party: Party, group: tuple[int, ...], columns: U64, weights: U64, rows: int, frac_bits: int
) -> U64:
    """Shares of ``X w`` (``f`` fractional bits) for the shared design and shared weights."""
    width = weights.size
    products = mul(party, group, columns, np.repeat(weights, rows))
    scores = products.reshape(width, rows).sum(axis=0, dtype=np.uint64)
    return truncate(party, group, scores, frac_bits, bound_bits=_BOUND_BITS)


def predict_vertical(
    party: Party,
    features: F64,
    model: PartyModel,
    *,
    requester: int,
    frac_bits: int = 16,
    group: Sequence[int] | None = None,
) -> F64 | None:
    """Joint prediction on new rows: the requester gets probabilities, the others ``None``.

    Each party of ``group`` (default: the mesh) scores its own columns; the sum is secret-shared
    and opened to the requester only.
    """
    group = _group(party, group)
    with session(party, "vertical-predict"):
        scores = model.scores(features)
        agree(party, group, {"protocol": "fl/vertical-predict/v1", "rows": scores.size})
        shared = share_sum(party, group, encode_fixed(scores, frac_bits))
        if party.index != requester:
            party.delivering(requester)  # the opened scores are the requester's output
        opened = open_to(party, group, shared, requester)
    if opened is None:
        return None
    return np.asarray(1.0 / (1.0 + np.exp(-decode_fixed(opened, frac_bits))), dtype=np.float64)


def predict_vertical_shared(
    party: Party, features: F64, model: SharedModel, *, requester: int, label_holder: int = 0
) -> F64 | None:
    """Joint prediction with a :class:`SharedModel`: the requester gets probabilities, the
    others ``None``; the scores ``X w`` are computed on shares and opened to the requester."""
    group = model.group
    with session(party, "vertical-predict"):
        design = _design(features, party.index == label_holder)
        rows = design.shape[0]
        agree(
            party,
            group,
            {"protocol": "fl/vertical-predict-shared/v1", "rows": rows, "widths": model.widths},
        )
        if design.shape[1] != model.widths[group.index(party.index)]:
            raise ValueError("the features do not match this party's part of the model")
        columns = _own_columns(party, group, design, model.widths, model.frac_bits)
        scores = _shared_scores(party, group, columns, model.shares, rows, model.frac_bits)
        if party.index != requester:
            party.delivering(requester)  # the opened scores are the requester's output
        opened = open_to(party, group, scores, requester)
    if opened is None:
        return None
    return np.asarray(
        1.0 / (1.0 + np.exp(-decode_fixed(opened, model.frac_bits))), dtype=np.float64
    )


def _group(party: Party, group: Sequence[int] | None) -> tuple[int, ...]:
    if group is None:
        return party.parties
    chosen = tuple(sorted(set(group)))
    if party.index not in chosen or not set(chosen) <= set(party.parties):
        raise ValueError(f"party {party.index} cannot run in group {chosen}")
    return chosen


def _exchange_widths(party: Party, group: tuple[int, ...], width: int) -> list[int]:
    payload = width.to_bytes(4, "big")
    theirs = party.exchange(group, dict.fromkeys(group, payload))
    widths = []
    for member in group:
        raw = payload if member == party.index else theirs[member]
        if len(raw) != 4:
            raise MpcError(f"party {member} sent a malformed column count")
        widths.append(int.from_bytes(raw, "big"))
    return widths


# --- Paillier variant -------------------------------------------------------------------------


def train_vertical_paillier(
    feature_parts: Sequence[F64],
    labels: F64,
    *,
    label_holder: int = 0,
    config: VerticalConfig | None = None,
    key_bits: int = 2048,
) -> list[PartyModel]:
    """FATE-style hetero LR with an arbiter's Paillier key and the Taylor sigmoid (in-process).

    Matches :func:`train_vertical_plaintext` with ``sigmoid="taylor"`` up to fixed-point
    rounding. Slow (one encryption per row, party and epoch): use a few epochs.
    """
    from phe import paillier  # type: ignore[import-untyped]  # optional: the 'fl' extra

    config = config or VerticalConfig()
    f = config.frac_bits
    scale = float(1 << f)
    public_key, private_key = paillier.generate_paillier_keypair(n_length=key_bits)  # arbiter
    designs = [_design(part, k == label_holder) for k, part in enumerate(feature_parts)]
    encoded = [np.rint(design * scale).astype(np.int64) for design in designs]
    rows = labels.size
    l2 = config.penalty(rows)
    params = [np.zeros(design.shape[1]) for design in designs]
    for _ in range(config.epochs):
        # non-label parties: encrypted partial scores to the label holder
        encrypted_scores = [
            [public_key.encrypt(int(v)) for v in np.rint(designs[k] @ params[k] * scale)]
            for k in range(len(designs))
            if k != label_holder
        ]
        # label holder: [[4 r]] = [[z]] + 2 - 4y, with its own scores added in the clear
        own = np.rint((designs[label_holder] @ params[label_holder] + 2.0 - 4.0 * labels) * scale)
        residual4 = []
        for row in range(rows):
            cipher = public_key.encrypt(int(own[row]))
            for scores in encrypted_scores:
                cipher = cipher + scores[row]
            residual4.append(cipher)
        # every party: masked encrypted gradient, decrypted by the arbiter, unmasked locally
        new_params = []
        for k, matrix in enumerate(encoded):
            gradient4 = np.empty(matrix.shape[1])
            for column in range(matrix.shape[1]):
                cipher = residual4[0] * int(matrix[0, column])
                for row in range(1, rows):
                    cipher = cipher + residual4[row] * int(matrix[row, column])
                mask = secrets.randbits(_PAILLIER_MASK_BITS)
                revealed = private_key.decrypt(cipher + mask)  # the arbiter's view
                gradient4[column] = (revealed - mask) / scale**2
            new_params.append(
                _gradient_step(
                    params[k], gradient4 / 4.0, rows, l2, config.learning_rate, k == label_holder
                )
            )
        params = new_params
    return [_to_model(w, k == label_holder) for k, w in enumerate(params)]
