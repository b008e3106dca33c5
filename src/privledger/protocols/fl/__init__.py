"""Federated learning: horizontal (FedAvg / FedProx with secure aggregation) and vertical
(secret-shared and Paillier logistic regression, SecureBoost gradient-boosted trees) training,
and each party's contribution.

Modules: :mod:`.secagg` (pairwise-mask secure aggregation with dropout recovery),
:mod:`.horizontal`, :mod:`.vertical`, :mod:`.gbdt` (with :mod:`.gbdt_binning`,
:mod:`.gbdt_paillier`, :mod:`.gbdt_tree`), :mod:`.contribution` (exact Shapley, fee shares).
"""
