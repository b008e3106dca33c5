"""The limit check is the total, one bit at a time: a bank grants it as it grants the total.

A grant by kinds (``stats``) left the multi-lending total out -- it tells the requester one
customer's figure at the bank -- but allowed the limit check, its amount column counting as
``aggregate``. The requester chooses the limit task by task, and nothing tied one check to the
next: a binary search over the limit read the customer's exact figure in log2(range) checks,
each an ordinary task under the grant's uses (seen to succeed on dd4a6d8: 12 checks, 2345
exactly). Both are now granted by name only, with the amount column ``retrieve``.
"""

from __future__ import annotations

import json
import secrets

import pytest

from privledger.evm.contracts import FailureReason
from privledger.evm.errors import ChainRevert
from privledger.node.spec import SpecInput
from tests.e2e.test_walking_path import wait_status

from .malicious import Mallory, grant
from .test_lending_terms import lending_body
from .test_requester_attacks import _failed_for, _refused, _spec

pytestmark = pytest.mark.security

SECRET = 2_345  # the target customer's loans at bank-a: what the grant meant to keep
BITS = 12  # amounts below 2^12: twelve checks


def _exceeds(mallory: Mallory, loans: str, limit: int) -> bool | None:
    """One limit check through mallory's node: the bit, or None if the node refused it."""
    query = mallory.register(["customer", "limit"], [["target", limit]], level=4)
    response = mallory.submit(lending_body(mallory, "lending-exceeds", query, loans))
    if response.status_code != 201:
        _refused(response, "protocols")
        return None
    with mallory.client() as client:
        final = wait_status(client, response.json()["taskId"], {"settled", "failed"})
        assert final["status"] == "settled", final
        (item,) = client.get(f"/tasks/{final['taskId']}/result").json()["items"]
    return bool(json.loads(item)["exceeds"])


def test_a_grant_for_aggregates_gives_no_figure_by_binary_search(mallory: Mallory) -> None:
    running = mallory.running
    path = running.import_dir("bank-a") / f"loans-{secrets.token_hex(3)}.csv"
    rows = "".join(f"c{i},{secrets.randbelow(2**BITS)}\n" for i in range(300))
    path.write_text(f"customer,amount\n{rows}target,{SECRET}\n")
    body = {"path": str(path), "name": path.stem, "level": 2, "unitPrice": 0}
    with running.client("bank-a", "data_owner") as owner:
        response = owner.post("/datasets", json=body)
        assert response.status_code == 201, response.text
        loans = str(response.json()["datasetId"])
    issued = grant(running, "bank-a", loans, mallory.org_id, kinds=["stats"], maxUses=20)

    low, high = 0, 2**BITS  # the figure is in [low, high)
    for _ in range(BITS):
        middle = (low + high) // 2
        over = _exceeds(mallory, loans, middle - 1)  # total > middle - 1: total >= middle
        if over is None:
            break
        low, high = (middle, high) if over else (low, middle)
    assert (low, high) == (0, 2**BITS)  # the first check was refused: nothing learned

    # past its own node's check: the grant names no limit check, so the contract refuses it;
    # under terms naming it with the amount only aggregated, bank-a's node refuses it before it
    # reads a row
    query = mallory.register(["customer", "limit"], [["target", SECRET]], level=4)
    items = [
        SpecInput(dataset=query, org=mallory.org_id, column="customer", value_column="limit"),
        SpecInput(
            dataset=loans, org=running.org_ids["bank-a"], column="customer", value_column="amount"
        ),
    ]
    spec = _spec(
        mallory, "lending-exceeds", items, kind="stats", dealer=running.org_ids["regulator"]
    )
    with pytest.raises(ChainRevert, match="GrantRegistryProtocolNotAllowed"):
        mallory.forge(spec, [bytes(32), issued], run=True)
    aggregates = {
        "protocols": ["lending-exceeds"],
        "columns": {"customer": ["join"], "amount": ["aggregate"]},
    }
    by_name = grant(running, "bank-a", loans, mallory.org_id, terms=aggregates)
    before = mallory.balance()
    task_id = mallory.forge(spec, [bytes(32), by_name], run=True)
    _failed_for(mallory, task_id, FailureReason.TERMS_VIOLATION, before)
