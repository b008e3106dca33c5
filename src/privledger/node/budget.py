"""The privacy budget a differentially private training task spends, from its spec alone.

The submitting node, every provider node holding the task to its grant's ``max_epsilon``
(:mod:`privledger.node.terms`) and the runner recording the budget with the model compute it
the same way, before any data is touched: epsilon at the spec's ``delta`` by Rényi accounting
(:func:`privledger.protocols.fl.dp.epsilon`) over every Gaussian mechanism the task runs.
"""

from __future__ import annotations

import math

from privledger.node.spec import HorizontalSpec, TaskSpec, VerticalLrSpec
from privledger.protocols.fl.dp import epsilon
from privledger.protocols.fl.federation import FederationConfig, threshold
from privledger.protocols.fl.vertical import VerticalConfig

Budget = dict[str, float | int | str]


def vertical_trainings(spec: VerticalLrSpec) -> int:
    """How many models a vertical-lr task trains on the same rows: the joint one and, for three
    parties, the label holder with each partner (their validation scores measure the partners'
    Shapley values, ``node/runners/fl.py``); the label holder sees an output of each."""
    return 3 if len(spec.inputs) == 3 else 1


def horizontal_noise_multiplier(spec: HorizontalSpec) -> float:
    """The noise multiplier of the sums a horizontal task's aggregator reads, held against an
    aggregator that trains rows of its own and adds no noise to them. Each client adds its share
    so that any ``t`` clients' noise sums to the spec's multiplier (``t`` the secure sum's
    threshold, :func:`privledger.protocols.fl.dp.client_noise_std`); with fewer than ``t``
    clients besides the requester, their shares alone remain: with three clients, the fewest a
    task takes, ``sqrt(2/3)`` of it."""
    assert spec.dp is not None
    t = threshold(len(spec.owners))
    others = len(spec.owners - {spec.requester})
    return spec.dp.noise_multiplier * math.sqrt(min(others, t) / t)


def training_epsilon(spec: TaskSpec) -> float | None:
    """The epsilon a training task with ``dp`` spends at its delta; None for a task without."""
    if isinstance(spec, HorizontalSpec) and spec.dp is not None:
        rounds = spec.rounds or FederationConfig.rounds
        return epsilon(horizontal_noise_multiplier(spec), rounds, spec.dp.delta)
    if isinstance(spec, VerticalLrSpec) and spec.dp is not None:
        return epsilon(spec.dp.noise_multiplier, _vertical_mechanisms(spec), spec.dp.delta)
    return None


def _vertical_mechanisms(spec: VerticalLrSpec) -> int:
    return (spec.rounds or VerticalConfig.epochs) * vertical_trainings(spec)


def vertical_budget(spec: VerticalLrSpec) -> Budget:
    """What a vertical-lr task with ``dp`` records in its result: the parameters, epsilon for one
    row replaced by another (features and label, :mod:`privledger.protocols.fl.vertical`) and for
    one row's label alone (half the sensitivity), over every epoch of every model it trains."""
    dp = spec.dp
    assert dp is not None
    mechanisms = _vertical_mechanisms(spec)
    return {
        "noise_multiplier": dp.noise_multiplier,
        "clip_norm": dp.clip_norm,
        "delta": dp.delta,
        "epochs": spec.rounds or VerticalConfig.epochs,
        "trainings": vertical_trainings(spec),
        "epsilon": epsilon(dp.noise_multiplier, mechanisms, dp.delta),
        "label_epsilon": epsilon(2 * dp.noise_multiplier, mechanisms, dp.delta),
        "neighbouring": "one row replaced",
        "accountant": "RDP (dp-accounting)",
    }
