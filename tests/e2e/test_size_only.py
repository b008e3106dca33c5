"""Size-only PSI (terms output ``size``): both parties learn how many customers they share and
nothing else; terms that grant only the size refuse a task that would release the intersection,
and the provider still enforces its release threshold."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import Running
from .test_walking_path import FEE, grant, wait_status


def _body(mine: str, theirs: str, **fields: Any) -> dict[str, Any]:
    inputs = [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}]
    return {"inputs": inputs, "feeWei": FEE, "protocol": "ecdh", **fields}


def _post(running: Running, body: dict[str, Any]) -> httpx.Response:
    with running.client("telecom", "operator") as client:
        return client.post("/tasks", json=body)


def test_a_size_only_grant_releases_the_count_and_nothing_else(running: Running) -> None:
    telecom, bank = running.register("telecom"), running.register("bank-a")
    grant(
        running,
        "bank-a",
        bank,
        "telecom",
        kinds=[],
        terms={"protocols": ["ecdh", "kkrt"], "columns": {"phone": ["join"]}, "outputs": ["size"]},
    )
    refused = _post(running, _body(telecom, bank))  # the intersection itself: not granted
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "terms_violation"
    assert "outputs" in refused.json()["error"]["message"]
    kkrt = _post(running, _body(telecom, bank, protocol="kkrt", output="size"))
    assert kkrt.status_code == 400 and "only ECDH-PSI" in kkrt.json()["error"]["message"]

    response = _post(running, _body(telecom, bank, output="size"))
    assert response.status_code == 201, response.text
    task_id = response.json()["taskId"]
    common = len(running.people["telecom"] & running.people["bank-a"])
    for org in ("telecom", "bank-a"):
        with running.client(org, "operator") as client:
            final = wait_status(client, task_id, {"settled", "failed"})
            assert final["status"] == "settled", final
    with running.client("telecom", "operator") as client:
        assert client.get(f"/tasks/{task_id}/result").json()["items"] == [str(common)]
    bank_a = running.org_ids["bank-a"]
    assert running.ledger(0).tasks.units_of(task_id, bank_a) == common  # paid per matched row
