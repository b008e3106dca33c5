"""Item 3 of issue 15: secure aggregation over two clients, one of them the aggregator.

The task's requester aggregates and, when it holds an input, trains its own rows as one more
client (the node runs it through an in-process channel). With two clients the aggregator
subtracts its own contribution from every secure sum: the other client's row count and column
sums (standardisation round) and its exact update in every round. Now the federation needs three
contributors in every sum: two clients are refused, and so is a sum that dropouts leave with two.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from privledger.protocols.channel import channel_pair
from privledger.protocols.fl.federation import FederationConfig, FederationError, run_client
from privledger.protocols.fl.horizontal import ClientData
from tests.protocols.fl.test_federation import DropAfter, federate, shards_of

pytestmark = pytest.mark.privacy


@pytest.fixture(scope="module")
def shards2() -> list[ClientData]:
    x, y = load_breast_cancer(return_X_y=True)
    return shards_of(x[:200], y[:200].astype(float), 2)


def test_the_aggregator_with_its_own_rows_and_one_client_learns_nothing(
    shards2: list[ClientData],
) -> None:
    own, other = shards2  # client 1 is the aggregator's own rows
    recovered = None
    try:
        model, _ = federate(shards2, FederationConfig(rounds=1))
    except FederationError:
        pass  # refused before any sum
    else:
        rows = model.rows - own.labels.size
        sums = model.mean * model.rows - own.features.sum(axis=0)
        if rows == other.labels.size and np.allclose(sums, other.features.sum(axis=0), atol=1e-3):
            recovered = (rows, sums)
    assert recovered is None, "the aggregator recovered the other client's rows and column sums"


def test_a_client_refuses_a_federation_of_two() -> None:
    client_end, server_end = channel_pair()
    data = ClientData(np.ones((4, 2)), np.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(FederationError, match="at least 3"):
        run_client(client_end, 1, data, FederationConfig(), index=0, clients=2, timeout=5)
    with pytest.raises(Exception):  # noqa: B017 - the client sent nothing at all
        server_end.recv(0.05)


def test_dropouts_never_leave_a_sum_of_two(shards2: list[ClientData]) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    shards = shards_of(x[:300], y[:300].astype(float), 3)
    # client 3 vanishes before its first masked vector: two would be left
    with pytest.raises(FederationError, match="threshold"):
        federate(
            shards, FederationConfig(rounds=1), lambda i, ch: DropAfter(ch, 3 if i == 2 else 99)
        )
