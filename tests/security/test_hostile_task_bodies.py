"""Task bodies a requester's own mistakes or malice make: each a clear 4xx before anything is
escrowed or consumed, never a 5xx (which reads as the node's failure and pages its operators)."""

from __future__ import annotations

import json

import pytest

from .malicious import FEE, Mallory, grant
from .test_requester_attacks import _phones

pytestmark = pytest.mark.security


def test_a_fee_above_the_balance_and_non_finite_numbers_are_the_callers_errors(
    mallory: Mallory,
) -> None:
    """A fee above mallory's balance was a 503 chain_unavailable; histogram edges of NaN or
    Infinity were accepted, put on chain as tokens no standard JSON parser reads, and consumed
    a use of the grant before every provider refused them."""
    running = mallory.running
    data = running.register("bank-a")
    issued = grant(running, "bank-a", data, mallory.org_id, kinds=["psi", "stats"], maxUses=5)
    keys = mallory.register(["phone"], _phones(mallory, "bank-a", 5, 5))
    inputs = [{"dataset": keys, "column": "phone"}, {"dataset": data, "column": "phone"}]
    tasks = mallory.ledger.tasks
    count = tasks.task_count()

    unpaid = mallory.submit({"protocol": "ecdh", "inputs": inputs, "feeWei": 2**96 - 1})
    assert unpaid.status_code == 402, unpaid.text
    assert unpaid.json()["error"]["code"] == "insufficient_funds"

    for edges in ([0, float("nan"), 5], [0, float("inf")], [float("-inf"), 0]):
        body = {
            "kind": "stats",
            "protocol": "joint-stats",
            "inputs": inputs,
            "dealer": running.org_ids["regulator"],
            "histogramEdges": edges,
        }
        with mallory.client() as client:  # json.dumps writes NaN and Infinity as such
            content = json.dumps({"feeWei": FEE, **body})
            headers = {"content-type": "application/json"}
            refused = client.post("/tasks", content=content, headers=headers)
        assert 400 <= refused.status_code < 500, refused.text
        assert "finite" in refused.json()["error"]["message"], refused.text
    assert tasks.task_count() == count  # nothing submitted
    assert running.ledger(0).grants.get_grant(issued).used == 0
