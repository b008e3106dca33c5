"""Joint statistics as a ledger task: three organisations' columns, the regulator's node dealing
the correlated randomness, the result only to the requester, suppressed below the group size."""

from __future__ import annotations

import json
import secrets

import numpy as np

from privledger.demo import wait_healthy
from privledger.evm.contracts import FailureReason

from .conftest import Running
from .test_walking_path import FEE, grant, wait_status


def loans(running: Running, org: str, rows: int, *, level: int) -> tuple[str, list[float]]:
    amounts = [round(secrets.randbelow(10**8) / 100, 2) for _ in range(rows)]
    path = running.import_dir(org) / f"{org}-loans-{secrets.token_hex(3)}.csv"
    path.write_text("customer,amount\n" + "".join(f"c{i},{a}\n" for i, a in enumerate(amounts)))
    body = {"path": str(path), "name": f"{org}-loans", "level": level, "unitPrice": 10**9}
    with running.client(org, "data_owner") as owner:
        response = owner.post("/datasets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["datasetId"]), amounts


def run_stats(
    running: Running, datasets: list[str], edges: list[float] | None = None
) -> dict[str, object]:
    body = {
        "kind": "stats",
        "protocol": "joint-stats",
        "inputs": [{"dataset": d, "column": "amount"} for d in datasets],
        "dealer": running.org_ids["regulator"],
        "fracBits": 8,  # amounts up to 10^6: room for their squares
        "histogramEdges": edges,
        "feeWei": FEE,
    }
    with running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"})
        assert final["status"] == "settled", final
        (item,) = client.get(f"/tasks/{task_id}/result").json()["items"]
    with running.client("bank-a", "operator") as client:  # no output for a data party
        assert client.get(f"/tasks/{task_id}/result").status_code == 404
    assert len(running.ledger(0).tasks.anchors(task_id)) == 4  # three parties and the dealer
    result: dict[str, object] = json.loads(item)
    return result


def test_joint_statistics_match_numpy_and_respect_the_group_size(running: Running) -> None:
    own, own_values = loans(running, "telecom", 400, level=2)
    a, a_values = loans(running, "bank-a", 700, level=2)
    b, b_values = loans(running, "bank-b", 500, level=3)
    grant(running, "bank-a", a, "telecom", kinds=["stats"])
    grant(running, "bank-b", b, "telecom", kinds=["stats"])
    edges = [0.0, 250_000.0, 500_000.0, 1_000_000.0]
    result = run_stats(running, [own, a, b], edges)
    pooled = np.array(own_values + a_values + b_values)
    assert list(result["histogram"]) == np.histogram(pooled, bins=edges)[0].tolist()  # type: ignore[call-overload]
    assert result["suppressed"] is False and result["count"] == pooled.size
    assert abs(float(result["mean"]) - pooled.mean()) < 1e-3  # type: ignore[arg-type]
    assert abs(float(result["variance"]) - pooled.var()) / pooled.var() < 1e-6  # type: ignore[arg-type]

    # core data (level 4) needs at least 20 rows of each provider's own: with 5 and 4 rows the
    # providers refuse before they share anything (the requester's rows never count for them)
    tiny = [
        loans(running, org, rows, level=4)[0]
        for org, rows in (("telecom", 3), ("bank-a", 5), ("bank-b", 4))
    ]
    grant(running, "bank-a", tiny[1], "telecom", kinds=["stats"])
    grant(running, "bank-b", tiny[2], "telecom", kinds=["stats"])
    body = {
        "kind": "stats",
        "protocol": "joint-stats",
        "inputs": [{"dataset": d, "column": "amount"} for d in tiny],
        "dealer": running.org_ids["regulator"],
        "fracBits": 8,
        "feeWei": FEE,
    }
    with running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        refused = wait_status(client, response.json()["taskId"], {"settled", "failed"})
    assert refused["status"] == "failed"
    assert refused["failureReason"] == FailureReason.POLICY_VIOLATION


def book(running: Running, org: str, loans: dict[str, int]) -> str:
    path = running.import_dir(org) / f"{org}-book-{secrets.token_hex(3)}.csv"
    path.write_text("customer,amount\n" + "".join(f"{c},{a}\n" for c, a in loans.items()))
    body = {"path": str(path), "name": f"{org}-book", "level": 3, "unitPrice": 10**9}
    with running.client(org, "data_owner") as owner:
        response = owner.post("/datasets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["datasetId"])


# a bank joining the multi-lending check: a grant by kinds leaves the total and the limit check
# out, because they tell the requester a customer's figure (the amount column is retrieved)
LENDING_TERMS = {
    "protocols": ["lending-total", "lending-exceeds"],
    "columns": {"customer": ["join"], "amount": ["aggregate", "retrieve"]},
}


def lending_task(
    running: Running, query: str, books: list[str], protocol: str
) -> dict[str, object]:
    inputs = [{"dataset": query, "column": "customer", "valueColumn": "limit"}]
    inputs += [{"dataset": b, "column": "customer", "valueColumn": "amount"} for b in books]
    body = {
        "kind": "stats",
        "protocol": protocol,
        "inputs": inputs,
        "dealer": running.org_ids["regulator"],
        "feeWei": FEE,
    }
    with running.client("bank-a", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        final = wait_status(client, response.json()["taskId"], {"settled", "failed"})
        if final["status"] == "settled":
            (item,) = client.get(f"/tasks/{final['taskId']}/result").json()["items"]
            final["answer"] = json.loads(item)
    return dict(final)


def test_multi_lending_check_total_and_limit_and_a_bank_that_is_down(running: Running) -> None:
    others = {f"c{i}": secrets.randbelow(10**6) for i in range(300)}
    book_b = book(running, "bank-b", {**others, "alice": 120_000})
    book_t = book(running, "telecom", {**others, "alice": 30_000, "bob": 5})
    for org, dataset in (("bank-b", book_b), ("telecom", book_t)):
        grant(running, org, dataset, "bank-a", terms=LENDING_TERMS, maxUses=10)
    query = running.import_dir("bank-a") / f"query-{secrets.token_hex(3)}.csv"
    query.write_text("customer,limit\nalice,150000\n")  # exactly the total: does not exceed
    with running.client("bank-a", "data_owner") as owner:
        body = {"path": str(query), "name": "query", "level": 4, "unitPrice": 0}
        query_id = owner.post("/datasets", json=body).json()["datasetId"]

    total = lending_task(running, query_id, [book_b, book_t], "lending-total")
    assert total["status"] == "settled" and total["answer"]["total"] == 150_000  # type: ignore[index]
    exceeds = lending_task(running, query_id, [book_b, book_t], "lending-exceeds")
    assert exceeds["answer"]["exceeds"] is False  # type: ignore[index]

    bank_b = running.nodes["bank-b"]
    bank_b.kill()
    try:
        dropped = lending_task(running, query_id, [book_b, book_t], "lending-total")
    finally:
        bank_b.restart()
        wait_healthy(bank_b)
    assert dropped["status"] == "failed"
    assert dropped["failureReason"] == 6  # PEER_UNREACHABLE
    assert "answer" not in dropped  # nothing revealed
