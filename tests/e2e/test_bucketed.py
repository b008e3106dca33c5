"""Bucketed KKRT-PSI as a ledger task between node processes: both sides stream their files into
buckets, the intersection is a file whose SHA-256 is what the anchored digest commits to."""

from __future__ import annotations

import hashlib

from privledger.node.worker import digest_of_hash

from .conftest import Running
from .test_walking_path import FEE, fee_allocations, grant, wait_status


def test_a_bucketed_psi_task_streams_and_anchors_its_output_file(running: Running) -> None:
    telecom = running.register("telecom")
    bank = running.register("bank-a", price=10**9)
    grant(running, "bank-a", bank, "telecom")
    body = {
        "protocol": "kkrt",
        "buckets": 4,
        "inputs": [{"dataset": telecom, "column": "phone"}, {"dataset": bank, "column": "phone"}],
        "feeWei": FEE,
    }
    with running.client("telecom", "operator") as client:
        assert client.post("/tasks", json={**body, "protocol": "ecdh"}).status_code == 400
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"})
        assert final["status"] == "settled", final
        result = client.get(f"/tasks/{task_id}/result").json()
        download = client.get(f"/tasks/{task_id}/result/file")
    expected = running.people["telecom"] & running.people["bank-a"]
    assert set(result["items"]) == expected and len(result["items"]) == len(expected)
    assert download.status_code == 200
    assert set(download.text.splitlines()) == expected
    salt = bytes.fromhex(download.headers["X-Result-Salt"][2:])
    own = running.org_ids["telecom"]
    digest = digest_of_hash(task_id, own, salt, hashlib.sha256(download.content).digest())
    anchored = {
        e["args"]["org"]: e["args"]["resultDigest"]
        for e in final["timeline"]
        if e["event"] == "ResultAnchored"
    }
    assert anchored[own] == "0x" + digest.hex() == result["resultDigest"]
    assert fee_allocations(final) == {running.org_ids["bank-a"]: FEE}
