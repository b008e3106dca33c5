"""Classification policies (F17) enforced by the workers between real nodes: core data refuses
a PSI task, a small intersection over level-2 data is not released; both fail on chain with
POLICY_VIOLATION and the fee is refunded."""

from __future__ import annotations

import secrets

from privledger.evm.contracts import FailureReason

from .conftest import Running, wait_local_state
from .test_walking_path import grant, submit, wait_status


def register(running: Running, org: str, phones: list[str], level: int) -> str:
    path = running.import_dir(org) / f"policy-{org}-{secrets.token_hex(3)}.csv"
    path.write_text("phone\n" + "\n".join(phones) + "\n")
    body = {"path": str(path), "name": path.stem, "level": level, "unitPrice": 1}
    with running.client(org, "data_owner") as owner:
        response = owner.post("/datasets", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["datasetId"])


def failed_for_policy(running: Running, task_id: int) -> str:
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task_id, {"failed", "settled"})
        assert final["status"] == "failed", final
        assert final["failureReason"] == FailureReason.POLICY_VIOLATION
        assert client.get(f"/tasks/{task_id}/result").status_code == 404
        return str(final["localFailure"] or "")


def test_policies_are_published_and_enforced(running: Running) -> None:
    with running.client("bank-a", "operator") as client:
        policy = client.get("/policy").json()
    assert policy["4"]["kinds"] == ["stats", "fl"] and policy["2"]["minResult"] == 5

    phones = [f"+4410{i:06d}" for i in range(40)]
    mine = register(running, "telecom", phones, level=4)  # the requester's own level is its call
    core = register(running, "bank-a", phones, level=4)
    grant(running, "bank-a", core, "telecom")
    failed_for_policy(running, submit(running, mine, core)["taskId"])

    # level 2 releases no intersection under 5 rows: 3 common phones are withheld, by the
    # provider itself (ECDH-PSI's cardinality phase), before the requester can find them
    few = register(running, "bank-a", phones[:3] + [f"+4499{i:06d}" for i in range(30)], level=2)
    grant(running, "bank-a", few, "telecom")
    task_id = submit(running, mine, few)["taskId"]
    failed_for_policy(running, task_id)
    reason = wait_local_state(running, "bank-a", task_id, "failed")["localFailure"]
    assert "3 matched rows is below the provider's release threshold 5" in reason
