"""Differential privacy for horizontal FL: the budget of the Gaussian noise clients add.

Mechanism (distributed DP-FedAvg, McMahan et al., ICLR 2018, with secure aggregation): in every
round each client clips its model update to the L2 norm ``C``, gives it weight 1 (not its row
count, which would make one client's influence unbounded), and adds Gaussian noise of standard
deviation ``z * C / sqrt(t)`` per coordinate, where ``t`` is the fewest clients a secure sum
accepts. The aggregator only ever sees the sum (:mod:`.secagg`), whose noise then has standard
deviation at least ``z * C`` -- the Gaussian mechanism with noise multiplier ``z`` on a sum whose
sensitivity to any one client's participation is ``C``. Every client takes part in every round
(no sampling), so ``R`` rounds compose ``R`` such mechanisms.

The budget ``(epsilon, delta)`` is computed by Google's ``dp-accounting`` library with its Rényi
DP accountant, which is tight for composed Gaussian mechanisms; this module only translates.

What it protects and what it does not:

- the guarantee is client-level: the released model is ``(epsilon, delta)``-indistinguishable
  whether any one client took part, against anyone who sees the model (the aggregator, every
  client, whoever is given the model);
- against clients that collude and subtract their own noise, the honest clients' noise alone
  remains, standard deviation ``z * C * sqrt(h / t)`` for ``h`` honest survivors: the budget holds
  for ``h >= t``;
- the pooled per-column mean and variance that standardise the columns before training are
  computed once, by secure aggregation, without noise: they are outside the budget;
- the noise is drawn in floating point by numpy (PCG64 seeded from :mod:`secrets`) and then
  quantised to the secure sum's grid; the floating-point attacks on textbook samplers (Mironov,
  CCS 2012) are not addressed.
"""

from __future__ import annotations

import math
from typing import Final

MAX_EPSILON: Final = 1e6  # beyond this the accountant's answer carries no meaning


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """The epsilon of ``rounds`` Gaussian mechanisms of noise multiplier ``noise_multiplier``
    at ``delta`` (Rényi DP accounting)."""
    if noise_multiplier <= 0 or rounds < 1 or not 0 < delta < 1:
        raise ValueError("need noise_multiplier > 0, rounds >= 1 and 0 < delta < 1")
    # imported here: the library loads scipy.signal (~3 s of CPU), which a node that never
    # runs a DP task should not pay at start-up
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant

    accountant = rdp_privacy_accountant.RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)
    return min(float(accountant.get_epsilon(delta)), MAX_EPSILON)


def noise_for(target_epsilon: float, rounds: int, delta: float) -> float:
    """The smallest noise multiplier (to 0.1 %) whose ``rounds`` rounds spend at most
    ``target_epsilon`` at ``delta``."""
    if target_epsilon <= 0:
        raise ValueError("need target_epsilon > 0")
    low, high = 1e-3, 1.0
    while epsilon(high, rounds, delta) > target_epsilon:
        low, high = high, high * 2
    while high - low > 1e-3 * high:
        middle = (low + high) / 2
        if epsilon(middle, rounds, delta) > target_epsilon:
            low = middle
        else:
            high = middle
    return high


def client_noise_std(noise_multiplier: float, clip_norm: float, threshold: int) -> float:
    """The standard deviation of the noise each client adds, so that any ``threshold`` clients'
    noise sums to standard deviation ``noise_multiplier * clip_norm``."""
    return noise_multiplier * clip_norm / math.sqrt(threshold)
