"""Joint statistics: every group of a provider's rows the requester can count is held to the
provider's threshold, the rows outside a histogram's edges included."""

from __future__ import annotations

import secrets

import pytest

from .malicious import Mallory, grant
from .test_requester_attacks import _statistics_refused

pytestmark = pytest.mark.security


def test_the_rows_outside_a_histograms_edges_are_held_to_the_threshold(mallory: Mallory) -> None:
    """bank-a's 10 salaries (level 2: groups of 5 or more) hold one of 250,000; mallory asked for
    one bin, [0, 1000]. The bin held 9 of bank-a's rows, so bank-a ran the task, and the count
    less the bin told mallory that exactly one customer earns over 1,000 -- a second task with
    the last edge at 200,000 told it more of that one row."""
    running = mallory.running
    path = running.import_dir("bank-a") / f"bank-a-salaries-{secrets.token_hex(3)}.csv"
    rows = [f"c{i},{100 * (i + 1)}" for i in range(9)] + ["ceo,250000"]
    path.write_text("customer,amount\n" + "\n".join(rows) + "\n")
    body = {"path": str(path), "name": "bank-a-salaries", "level": 2, "unitPrice": 10**9}
    with running.client("bank-a", "data_owner") as owner:
        salaries = owner.post("/datasets", json=body).json()["datasetId"]
    grant(running, "bank-a", salaries, mallory.org_id, kinds=["stats"])
    padding = mallory.register(["customer", "amount"], [[f"m{i}", 500] for i in range(50)])
    for edges in ([0.0, 1_000.0], [1_000.0, 2_000.0]):  # one row above; nine below
        _statistics_refused(mallory, padding, salaries, edges)
