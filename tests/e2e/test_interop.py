"""The interop API driven end to end by an independent httpx-only client, and its refusals."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case

from tests.e2e.conftest import Running

CLIENT = Path(__file__).with_name("interop_client.py")


def interop(running: Running, org: str, role: str) -> httpx.Client:
    node = running.nodes[org]
    return httpx.Client(
        base_url=f"{node.url}/api/interop/v1",
        headers={"Authorization": f"Bearer {node.tokens[role]}"},
        timeout=60,
    )


def test_the_independent_client_runs_a_whole_psi_task(running: Running) -> None:
    imported = {
        alias.name if isinstance(node, ast.Import) else str(node.module)
        for node in ast.walk(ast.parse(CLIENT.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "json", "sys", "time", "typing", "httpx"}, imported
    mine, theirs = running.register("telecom"), running.register("bank-b")
    telecom, bank = running.nodes["telecom"], running.nodes["bank-b"]
    args = [telecom.url, telecom.tokens["operator"], bank.url, bank.tokens["operator"]]
    args += [bank.tokens["data_owner"], mine, theirs, "phone"]
    done = subprocess.run(
        [sys.executable, str(CLIENT), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["contractApplied"] == "APPLIED"
    assert summary["contract"]["status"] == "APPROVED" and summary["contract"]["active"]
    assert summary["datasetListed"]
    assert summary["authorisation"]["status"] == "APPROVED" and summary["authorisation"]["usable"]
    assert summary["job"]["status"] == "SETTLED", summary["job"]
    assert set(summary["items"]) == running.people["telecom"] & running.people["bank-b"]
    assert summary["usedAfterJob"] == 1
    assert summary["authorisationAfterTerminate"] == "TERMINATED"
    assert summary["contractAfterTerminate"] == "TERMINATED"

    # the chain backs it: the grant is revoked, the contract's decision anchored
    ledger = running.ledger(0)
    grant = ledger.grants.get_grant(bytes.fromhex(summary["authorisation"]["grantId"][2:]))
    assert grant.revoked and grant.grantee_org == running.org_ids["telecom"]
    batch = ledger.anchors.get_batch(summary["contract"]["anchorBatchId"])
    assert batch.org_id == running.org_ids["bank-b"]
    digest = bytes.fromhex(summary["contract"]["recordDigest"][2:])
    assert ledger.anchors.verify(batch.batch_id, digest, [])


def test_envelopes_versions_and_refusals(running: Running) -> None:
    url = running.nodes["bank-a"].url
    document = httpx.get(f"{url}/api/interop/v1/openapi.json").json()
    assert document["info"]["version"] == "1.0.0"
    assert "/node/contract/apply" in document["paths"]
    assert "/interconn/dataset/audit/confirm" in document["paths"]
    published = httpx.get(f"{url}/api/interop/v1/openapi/1.0.0.json").json()
    assert published["info"] == document["info"]
    node_doc = httpx.get(f"{url}/api/v1/openapi.json").json()
    version = node_doc["info"]["version"]
    assert httpx.get(f"{url}/api/v1/openapi/{version}.json").json()["paths"] == node_doc["paths"]
    changelog = httpx.get(f"{url}/api/v1/openapi/changelog").json()
    assert changelog[-1]["version"] == version
    for entry in changelog[:-1]:  # every earlier version stays published, as it was
        earlier = httpx.get(f"{url}/api/v1/openapi/{entry['version']}.json")
        assert earlier.status_code == 200 and earlier.json()["info"]["version"] == entry["version"]
    first = httpx.get(f"{url}/api/v1/openapi/1.0.0.json").json()  # before operation ids (1.3.0)
    first_ids = {op.get("operationId") for path in first["paths"].values() for op in path.values()}
    assert "submit_task" not in first_ids and "/api/v1/tasks" in first["paths"]
    missing = httpx.get(f"{url}/api/v1/openapi/0.9.0.json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{url}/api/interop/v1/node/health").json() == {
        "code": 0,
        "msg": "ok",
        "data": {"status": "ok"},
    }

    # no token, a bad body, an unknown contract, a self-partnership: 4xx in the envelope
    anonymous = httpx.post(f"{url}/api/interop/v1/node/contract/apply", json={"inst_id": 2})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 401
    with interop(running, "bank-a", "operator") as bank:
        for body in ({}, {"inst_id": 0}, {"inst_id": "x"}, {"inst_id": 2, "extra": 1}):
            answer = bank.post("/node/contract/apply", json=body)
            assert answer.status_code == 422, body
            assert answer.json()["data"] == {"error": "invalid_request"}
        itself = bank.post("/node/contract/apply", json={"inst_id": running.org_ids["bank-a"]})
        assert itself.status_code == 400 and itself.json()["code"] == 400
        unknown = bank.get("/node/contract/query", params={"contract_id": "0" * 32})
        assert unknown.status_code == 404 and unknown.json()["msg"]
        malformed = bank.get("/node/contract/query", params={"contract_id": "nope"})
        assert malformed.status_code == 422
        no_org = bank.post("/node/contract/apply", json={"inst_id": 999})
        assert no_org.status_code == 404
        no_job = bank.get("/schedule/job/query", params={"job_id": 10**9})
        assert no_job.status_code == 404
        # a contract that is only applied for authorises nothing
        contract = bank.post(
            "/node/contract/apply", json={"inst_id": running.org_ids["telecom"]}
        ).json()["data"]["contract_id"]
        early = bank.post(
            "/dataset/audit/apply",
            json={
                "contract_id": contract,
                "dataset_id": "0x" + "11" * 32,
                "auth_scope": {"COMPONENT": ["psi"]},
                "time_limit": 3_600,
                "times_limit": 1,
            },
        )
        assert early.status_code == 409 and early.json()["data"]["error"] == "contract_inactive"
        # only the partner confirms
        own = bank.post(
            "/node/contract/confirm", json={"contract_id": contract, "status": "APPROVED"}
        )
        assert own.status_code == 403
    with interop(running, "telecom", "operator") as telecom:
        refused = telecom.post(
            "/node/contract/confirm", json={"contract_id": contract, "status": "REJECTED"}
        )
        assert refused.status_code == 200 and refused.json()["data"]["status"] == "REJECTED"
        again = telecom.post(
            "/node/contract/confirm", json={"contract_id": contract, "status": "APPROVED"}
        )
        assert again.status_code == 409
    with interop(running, "bank-a", "operator") as bank:
        seen = bank.get("/node/contract/query", params={"contract_id": contract}).json()["data"]
        assert seen["status"] == "REJECTED" and not seen["active"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-source-node-id": "1", "x-target-node-id": "2", "x-nonce": "a" * 32},
        {
            "x-source-node-id": "3",
            "x-target-node-id": "{target}",
            "x-nonce": "b" * 32,
            "x-timestamp": "{now}",
            "x-auth-sign": "0x" + "00" * 65,
        },
    ],
)
def test_node_to_node_calls_need_a_valid_signature(
    running: Running, headers: dict[str, str]
) -> None:
    node = running.nodes["bank-a"]
    filled = {
        key: value.format(target=running.org_ids["bank-a"], now=int(time.time() * 1000))
        for key, value in headers.items()
    }
    answer = httpx.post(
        f"{node.url}/api/interop/v1/interconn/node/contract/apply",
        content=b'{"contract_id": "' + b"1" * 32 + b'"}',
        headers={"content-type": "application/json", **filled},
    )
    assert answer.status_code in (401, 403), answer.text
    assert answer.json()["code"] == answer.status_code


def check_enveloped(operation: APIOperation, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: Case) -> None:
        response = case.call(headers=headers, timeout=60)
        where = f"{case.method} {case.formatted_path}"
        envelope = json.loads(response.text)
        # a call that must reach another organisation's node and cannot (an org the fuzz picked
        # whose endpoint is down or does not resolve) is a bad gateway, said so; nothing else 5xx
        unreachable = response.status_code == 502 and envelope["data"] == {
            "error": "peer_unreachable"
        }
        assert response.status_code < 500 or unreachable, f"{where}: {response.text}"
        assert set(envelope) == {"code", "msg", "data"}, envelope
        assert (envelope["code"] == 0) == (response.status_code == 200), where

    check()


def no_interop_route_answers_500(url: str, tokens: dict[str, str]) -> None:
    """Every interop operation of the node at ``url`` (a tenant's is under /t/<org>), fuzzed from
    its published document: never a 500, always the envelope."""
    schema = schemathesis.openapi.from_url(f"{url}/api/interop/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        if operation.path.startswith("/openapi/"):
            continue  # the published documents themselves, not enveloped
        role = "data_owner" if "/audit/confirm" in operation.path else "operator"
        check_enveloped(operation, {"Authorization": f"Bearer {tokens[role]}"})


def test_no_interop_route_answers_500(running: Running) -> None:
    node = running.nodes["bank-b"]
    no_interop_route_answers_500(node.url, node.tokens)
