"""The audit log (F18): API calls with their caller and status, authorisation changes, data
access by the worker, every entry provable against the chain."""

from __future__ import annotations

import time
from typing import Any

import httpx

from privledger.evm.merkle import ProofDocument
from privledger.node.audit import canonical
from privledger.node.logbook import entry_digest
from privledger.store.models import AuditEntry

from .conftest import Running
from .test_walking_path import grant, submit, wait_status


def entries(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/audit", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return list(response.json())


def test_calls_grants_and_data_access_are_logged_and_provable(running: Running) -> None:
    with running.client("bank-a", "data_owner") as owner:
        start = max((e["id"] for e in entries(owner)), default=0)
    bank = running.register("bank-a")
    telecom = running.register("telecom")
    issued = grant(running, "bank-a", bank, "telecom")
    interop = httpx.get(f"{running.nodes['bank-a'].url}/api/interop/v1/openapi/changelog")
    assert interop.status_code == 200  # the interoperability API is audited too
    with running.client("bank-a", "operator") as operator:
        refused = operator.post("/grants", json={})
        assert refused.status_code in (403, 422)
        assert operator.get("/audit").status_code == 403  # operators do not read the log
    task = submit(running, telecom, bank)
    with running.client("telecom", "operator") as client:
        assert (
            wait_status(client, task["taskId"], {"settled"}, timeout_s=120)["status"] == "settled"
        )

    with running.client("bank-a", "data_owner") as owner:
        log = entries(owner, after=start)
        grants = [e for e in log if e["action"] == "authorisation" and e["outcome"] == "201"]
        assert grants and grants[0]["subject"] == "POST /api/v1/grants"
        assert "(data_owner)" in grants[0]["actor"]
        assert any("(operator)" in e["actor"] and e["outcome"] == "403" for e in log)
        deadline = time.monotonic() + 60
        changelog = ("GET /api/interop/v1/openapi/changelog", "anonymous", "200")
        # an anonymous call is counted ("200 x1"), and written when the node's interval ends
        while changelog not in {(e["subject"], e["actor"], e["outcome"][:3]) for e in log}:
            assert time.monotonic() < deadline, "the anonymous call was never logged"
            time.sleep(0.5)
            log = entries(owner, after=start)
        while not (reads := entries(owner, action="data_access", taskId=task["taskId"])):
            assert time.monotonic() < deadline, "the worker's read was never logged"
            time.sleep(0.5)
        assert reads[0]["subject"] == bank.lower() and reads[0]["outcome"] == "read phone"
        assert issued["grantId"]
        entry = grants[0]
        while (proof := owner.get(f"/audit/{entry['id']}/proof")).status_code == 409:
            assert time.monotonic() < deadline, "the audit log was never anchored"
            time.sleep(1)
        assert proof.status_code == 200, proof.text
        assert owner.get("/audit/999999999/proof").status_code == 404
        assert owner.get("/audit", params={"action": "nope"}).status_code == 422
    document = ProofDocument.from_json(proof.json())
    assert document.verify_offline()
    assert running.ledger(0).anchors.verify(document.batch_id, document.digest, document.proof)
    # the digest is recomputable from the entry the proof document carries
    body = proof.json()["entry"]
    assert entry_digest(body) == "0x" + document.digest.hex() == entry["digest"]
    assert set(body) == set(
        canonical(AuditEntry(action="api", actor="", subject="", outcome="", digest=""))
    )
