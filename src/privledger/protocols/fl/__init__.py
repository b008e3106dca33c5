"""Federated learning: horizontal (FedAvg / FedProx with secure aggregation) and vertical
(secret-shared and Paillier logistic regression) training, and each party's contribution.

Modules: :mod:`.secagg` (pairwise-mask secure aggregation with dropout recovery),
:mod:`.horizontal`, :mod:`.vertical`, :mod:`.contribution` (exact Shapley, fee shares).
"""
