"""The multi-lending total tells the requester one customer's figure: a bank's grant allows it
only by name, with the amount column retrievable, never through terms for aggregates."""

from __future__ import annotations

import secrets

import pytest

from privledger.evm.contracts import FailureReason
from privledger.node.spec import SpecInput

from .malicious import Mallory, grant
from .test_requester_attacks import _failed_for, _refused, _spec

pytestmark = pytest.mark.security


def lending_body(mallory: Mallory, protocol: str, query: str, loans: str) -> dict[str, object]:
    """A multi-lending task body: mallory's query (customer, limit) and bank-a's loans."""
    inputs = [
        {"dataset": query, "column": "customer", "valueColumn": "limit"},
        {"dataset": loans, "column": "customer", "valueColumn": "amount"},
    ]
    return {
        "kind": "stats",
        "protocol": protocol,
        "inputs": inputs,
        "dealer": mallory.running.org_ids["regulator"],
    }


def test_a_lending_total_is_not_a_lookup_under_terms_for_aggregates(mallory: Mallory) -> None:
    """bank-a's terms let its amount column enter aggregates only. Mallory ran the lending
    total with bank-a as the one bank and a query naming one customer: the task settled and
    the total was that customer's amount at bank-a, any customer it named, one per use."""
    running = mallory.running
    path = running.import_dir("bank-a") / f"bank-a-loans-{secrets.token_hex(3)}.csv"
    path.write_text("customer,amount\n" + "".join(f"c{i},{1_000 + i}\n" for i in range(300)))
    body = {"path": str(path), "name": "bank-a-loans", "level": 2, "unitPrice": 10**9}
    with running.client("bank-a", "data_owner") as owner:
        loans = owner.post("/datasets", json=body).json()["datasetId"]
    query = mallory.register(["customer", "limit"], [["c117", 0]])
    body = lending_body(mallory, "lending-total", query, loans)
    grant(running, "bank-a", loans, mallory.org_id, kinds=["stats"])  # by kinds: no total
    _refused(mallory.submit(body), "protocols")

    aggregates = {
        "protocols": ["joint-stats", "lending-total", "lending-exceeds"],
        "columns": {"customer": ["join"], "amount": ["aggregate"]},
    }
    issued = grant(running, "bank-a", loans, mallory.org_id, terms=aggregates)
    _refused(mallory.submit(body), "columns")
    items = [
        SpecInput(dataset=query, org=mallory.org_id, column="customer", value_column="limit"),
        SpecInput(
            dataset=loans, org=running.org_ids["bank-a"], column="customer", value_column="amount"
        ),
    ]
    spec = _spec(mallory, "lending-total", items, kind="stats", dealer=running.org_ids["regulator"])
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), issued], run=True)
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)
