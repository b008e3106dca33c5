"""A second, independent client of the interop API: plain HTTP with httpx, nothing of privledger.

It drives one whole PSI task between two organisations through the BFIA-style management plane:
partnership apply → confirm, dataset authorisation apply → confirm (a grant on chain), job
submission, status until settled, result, then terminates the authorisation and the partnership.

    python tests/e2e/interop_client.py REQUESTER_URL REQUESTER_OPERATOR_TOKEN \\
        PROVIDER_URL PROVIDER_OPERATOR_TOKEN PROVIDER_DATA_OWNER_TOKEN \\
        MY_DATASET THEIR_DATASET COLUMN

prints a JSON summary (the intersection included) on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx

PREFIX = "/api/interop/v1"


class InteropError(RuntimeError):
    """The API answered with a non-zero code."""


class Interop:
    """One node's interop API with one token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.root = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.root + PREFIX,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    def _data(self, response: httpx.Response) -> Any:
        envelope = response.json()
        if response.status_code != 200 or envelope.get("code") != 0:
            raise InteropError(f"{response.request.url}: {response.status_code} {envelope}")
        return envelope["data"]

    def get(self, path: str, **params: Any) -> Any:
        return self._data(self.http.get(path, params=params))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._data(self.http.post(path, json=body))

    def close(self) -> None:
        self.http.close()


def run_task(
    requester: Interop,
    provider_operator: Interop,
    provider_owner: Interop,
    *,
    my_dataset: str,
    their_dataset: str,
    column: str,
    fee_wei: int = 10**15,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Partnership, authorisation, PSI job, result, termination; a summary of each step."""
    summary: dict[str, Any] = {"health": requester.get("/node/health")["status"]}
    provider_health = provider_operator.get("/node/health")["status"]
    summary["providerHealth"] = provider_health

    provider_org = _org_of(provider_operator)
    provider = requester.get("/node/query", node_id=provider_org)
    summary["provider"] = {"name": provider["name"], "address": provider["address"]}

    contract_id = requester.post(
        "/node/contract/apply", {"inst_id": provider_org, "description": "interop client test"}
    )["contract_id"]
    summary["contractApplied"] = provider_operator.get(
        "/node/contract/query", contract_id=contract_id
    )["status"]
    provider_operator.post(
        "/node/contract/confirm", {"contract_id": contract_id, "status": "APPROVED"}
    )
    contract = requester.get("/node/contract/query", contract_id=contract_id)
    summary["contract"] = {
        "id": contract_id,
        "status": contract["status"],
        "active": contract["active"],
        "anchorTx": contract["anchor_tx"],
        "recordDigest": contract["record_digest"],
        "anchorBatchId": contract["anchor_batch_id"],
    }

    listed = requester.get("/dataset/pub/list", contract_id=contract_id)["records"]
    summary["datasetListed"] = any(record["dataset_id"] == their_dataset for record in listed)

    audit_id = requester.post(
        "/dataset/audit/apply",
        {
            "contract_id": contract_id,
            "dataset_id": their_dataset,
            "auth_scope": {"COMPONENT": ["psi"]},
            "time_limit": 3_600,
            "times_limit": 1,
        },
    )["audit_id"]
    confirmed = provider_owner.post(
        "/dataset/audit/confirm", {"audit_id": audit_id, "status": "APPROVED"}
    )
    authorisation = requester.get("/dataset/audit/query", audit_id=audit_id)
    summary["authorisation"] = {
        "id": audit_id,
        "status": authorisation["status"],
        "usable": authorisation["usable"],
        "grantId": confirmed["resource_permit"]["token"],
    }

    job = requester.post(
        "/schedule/job/create",
        {
            "kind": "psi",
            "protocol": "ecdh",
            "inputs": [
                {"dataset_id": my_dataset, "column": column},
                {"dataset_id": their_dataset, "column": column},
            ],
            "fee_wei": fee_wei,
        },
    )
    job_id = job["job_id"]
    deadline = time.monotonic() + timeout_s
    status = requester.get("/schedule/job/query", job_id=job_id)
    while status["status"] not in ("SETTLED", "FAILED"):
        if time.monotonic() > deadline:
            raise InteropError(f"job {job_id} still {status['status']} after {timeout_s:.0f}s")
        time.sleep(0.5)
        status = requester.get("/schedule/job/query", job_id=job_id)
    summary["job"] = {"id": job_id, "status": status["status"], "failure": status["local_failure"]}
    if status["status"] == "SETTLED":
        result = requester.get("/schedule/job/result", job_id=job_id)
        summary["items"] = result["items"]
        summary["resultDigest"] = result["result_digest"]
    summary["usedAfterJob"] = requester.get("/dataset/audit/query", audit_id=audit_id)["used"]

    requester.post("/dataset/audit/terminate", {"audit_id": audit_id})
    summary["authorisationAfterTerminate"] = provider_owner.get(
        "/dataset/audit/query", audit_id=audit_id
    )["status"]
    requester.post("/node/contract/terminate", {"contract_id": contract_id})
    summary["contractAfterTerminate"] = provider_operator.get(
        "/node/contract/query", contract_id=contract_id
    )["status"]
    return summary


def _org_of(client: Interop) -> int:
    """The organisation id of the node behind ``client``, from the node API's health route."""
    health = httpx.get(client.root + "/api/v1/health")
    org_id: int = health.raise_for_status().json()["orgId"]
    return org_id


def main(argv: list[str]) -> int:
    if len(argv) != 8:
        print(__doc__, file=sys.stderr)
        return 2
    requester_url, requester_token, provider_url, provider_op, provider_owner = argv[:5]
    my_dataset, their_dataset, column = argv[5:]
    clients = [
        Interop(requester_url, requester_token),
        Interop(provider_url, provider_op),
        Interop(provider_url, provider_owner),
    ]
    try:
        summary = run_task(
            *clients, my_dataset=my_dataset, their_dataset=their_dataset, column=column
        )
    finally:
        for client in clients:
            client.close()
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
