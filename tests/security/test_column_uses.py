"""A column is held to every use a task makes of it: named as the join key and as a feature,
it must be granted for both."""

from __future__ import annotations

import secrets

import pytest

from privledger.evm.contracts import FailureReason
from privledger.node.spec import SpecInput

from .malicious import Mallory, grant
from .test_requester_attacks import _failed_for, _refused, _spec

pytestmark = pytest.mark.security


def test_a_column_granted_for_aggregates_is_no_join_key_when_also_a_feature(
    mallory: Mallory,
) -> None:
    """bank-a's terms: its ids join, its incomes enter aggregates only. Mallory aligned on the
    income column itself, also naming it as the feature: the column kept only its last use,
    both nodes ran the task, and the alignment told mallory which of its 40 guessed incomes are
    bank-a's customers' (25)."""
    running = mallory.running
    incomes = [str(30_000 + 7 * i) for i in range(100)]
    path = running.import_dir("bank-a") / f"bank-a-income-{secrets.token_hex(3)}.csv"
    path.write_text("id,income\n" + "".join(f"c{i},{v}\n" for i, v in enumerate(incomes)))
    body = {"path": str(path), "name": "bank-a-income", "level": 2, "unitPrice": 10**9}
    with running.client("bank-a", "data_owner") as owner:
        data = owner.post("/datasets", json=body).json()["datasetId"]
    terms = {"protocols": ["vertical-lr"], "columns": {"id": ["join"], "income": ["aggregate"]}}
    issued = grant(running, "bank-a", data, mallory.org_id, terms=terms)
    guesses = incomes[:25] + [str(31_000 + 7 * i + 3) for i in range(15)]
    rows = [[g, secrets.randbelow(1000) / 1000, secrets.randbelow(2)] for g in guesses]
    mine = mallory.register(["g", "f0", "label"], rows)
    dealer = running.org_ids["regulator"]
    body = {
        "kind": "fl",
        "protocol": "vertical-lr",
        "inputs": [
            {"dataset": mine, "column": "g", "features": ["f0"], "valueColumn": "label"},
            {"dataset": data, "column": "income", "features": ["income"]},
        ],
        "dealer": dealer,
    }
    _refused(mallory.submit(body), "columns")
    items = [
        SpecInput(
            dataset=mine, org=mallory.org_id, column="g", features=["f0"], value_column="label"
        ),
        SpecInput(
            dataset=data, org=running.org_ids["bank-a"], column="income", features=["income"]
        ),
    ]
    spec = _spec(mallory, "vertical-lr", items, kind="fl", dealer=dealer)
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued], run=True)
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)
