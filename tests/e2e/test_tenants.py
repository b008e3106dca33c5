"""Tenants (F13): one node process hosts two organisations, each with its own keys, database,
tokens and worker under /t/<org>. A PSI task runs between them; no route of one tenant answers
the other's token, and neither sees the other's datasets, results or audit log."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from privledger.demo import NodeProcess, prepare_node_home, spawn
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import free_port
from privledger.evm.contracts import Role
from privledger.evm.deploy import deployment_path

from .conftest import Running
from .test_walking_path import FEE

# name -> development account of its admin: beyond anvil's ten funded ones, which other tests use
TENANTS = {"tenant-x": 20, "tenant-y": 21}


@pytest.fixture(scope="module")
def host(running: Running) -> Iterator[tuple[str, dict[str, dict[str, str]], dict[str, int]]]:
    admin = running.ledger(0)
    org_ids, tokens, homes = {}, {}, {}
    for name, index in TENANTS.items():
        account = dev_account(index)
        running.w3.provider.make_request("anvil_setBalance", [account.address, hex(10**21)])
        org_id = admin.orgs.org_of(account.address)
        if org_id == 0:
            org_id = admin.orgs.register_org(name, account.address, "", bytes(32))
            own = running.ledger(index)
            own.orgs.grant_roles(org_id, account.address, Role.DATA_OWNER | Role.OPERATOR)
        org_ids[name] = org_id
        roles = Role.DATA_OWNER | Role.OPERATOR
        homes[name], tokens[name] = prepare_node_home(running.settings, name, index, roles)
    port = free_port()
    command = [sys.executable, "-m", "privledger.cli", "-v", "node", "host", "--port", str(port)]
    command += ["--rpc-url", str(running.info["rpcUrl"])]
    for name, home in homes.items():
        command += ["--tenant", f"{name}={home}"]
    env = {
        **os.environ,
        "PRIVLEDGER_PROJECT_ROOT": str(running.settings.project_root),
        "PRIVLEDGER_DEPLOYMENT_FILE": str(
            deployment_path(running.settings.deployments_dir, running.w3.eth.chain_id)
        ),
        "PRIVLEDGER_CHANNEL_TIMEOUT_S": "10",
    }
    log = running.settings.var_dir / "logs" / "tenant-host.log"
    process = spawn(command, env, log)
    url = f"http://127.0.0.1:{port}"
    handle = NodeProcess("tenant-host", url, process, {}, command, env, log)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/tenants", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the tenant host did not start"
        time.sleep(0.3)
    yield url, tokens, org_ids
    handle.stop()


def api(url: str, tenant: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{url}/t/{tenant}/api/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def register(client: httpx.Client, path: str, name: str) -> str:
    body = {"path": path, "name": name, "level": 2, "unitPrice": 10**9}
    response = client.post("/datasets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["datasetId"])


def upload(client: httpx.Client, path: Path, name: str) -> str:
    params = {"name": name, "level": 2, "unitPrice": 10**9}
    response = client.post("/datasets/upload", params=params, content=path.read_bytes())
    assert response.status_code == 201, response.text
    return str(response.json()["datasetId"])


def test_two_tenants_compute_together_and_stay_isolated(
    running: Running, host: tuple[str, dict[str, dict[str, str]], dict[str, int]]
) -> None:
    url, tokens, org_ids = host
    assert httpx.get(f"{url}/tenants").json() == {"tenants": sorted(TENANTS)}
    for name, org_id in org_ids.items():
        health = httpx.get(f"{url}/t/{name}/api/v1/health").json()
        assert health["orgId"] == org_id and health["endpoint"] == f"{url}/t/{name}"
    x_owner = api(url, "tenant-x", tokens["tenant-x"]["data_owner"])
    y_owner = api(url, "tenant-y", tokens["tenant-y"]["data_owner"])
    x_file = running.import_dir("tenant-x") / "customers.csv"
    shutil.copyfile(running.data_dir / "telecom.csv", x_file)
    x_data = register(x_owner, "customers.csv", "x-customers")  # from x's own import directory
    y_data = upload(y_owner, running.data_dir / "bank-a.csv", "y-customers")
    # each tenant's import directory is its own: y cannot register x's file by its path
    refused = y_owner.post(
        "/datasets", json={"path": str(x_file), "name": "y", "level": 2, "unitPrice": 0}
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_importable"
    grant = {
        "dataset": y_data,
        "granteeOrg": org_ids["tenant-x"],
        "kinds": ["psi"],
        "expiresInS": 3600,
        "maxUses": 1,
    }
    assert y_owner.post("/grants", json=grant).status_code == 201

    with api(url, "tenant-x", tokens["tenant-x"]["operator"]) as x_operator:
        body = {
            "inputs": [
                {"dataset": x_data, "column": "phone"},
                {"dataset": y_data, "column": "phone"},
            ],
            "feeWei": FEE,
        }
        task = x_operator.post("/tasks", json=body)
        assert task.status_code == 201, task.text
        task_id = task.json()["taskId"]
        deadline = time.monotonic() + 120
        while (status := x_operator.get(f"/tasks/{task_id}").json()["status"]) != "settled":
            assert status != "failed" and time.monotonic() < deadline, status
            time.sleep(0.5)
        items = x_operator.get(f"/tasks/{task_id}/result").json()["items"]
    assert set(items) == running.people["telecom"] & running.people["bank-a"]

    # y's tokens open nothing of x: every protected route of x answers 401 to them
    y_operator = api(url, "tenant-x", tokens["tenant-y"]["operator"])
    schema = httpx.get(f"{url}/t/tenant-x/api/v1/openapi.json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        if "get" not in operations or path.startswith("/api/v1/peer"):
            continue
        concrete = (
            path.replace("/api/v1", "")
            .replace("{task_id}", str(task_id))
            .replace("{dataset_id}", x_data)
            .replace("{org_id}", str(org_ids["tenant-x"]))
        )
        if "{" in concrete:
            continue
        anonymous = httpx.get(f"{url}/t/tenant-x/api/v1{concrete}")
        if anonymous.status_code != 401:
            continue  # a public route (health, OpenAPI)
        for token in tokens["tenant-y"].values():
            response = api(url, "tenant-x", token).get(concrete)
            assert response.status_code == 401, (concrete, response.text)
        checked += 1
    assert checked >= 10
    assert y_operator.get(f"/tasks/{task_id}/result").status_code == 401
    # on its own prefix, y finds neither x's dataset nor an output of the task
    assert y_owner.get(f"/datasets/{x_data}").status_code == 404
    assert x_data not in {d["datasetId"] for d in y_owner.get("/datasets").json()}
    with api(url, "tenant-y", tokens["tenant-y"]["operator"]) as own:
        assert own.get(f"/tasks/{task_id}/result").status_code == 404
    actors = {entry["actor"] for entry in y_owner.get("/audit", params={"limit": 500}).json()}
    assert actors and not any("tenant-x" in actor for actor in actors)


def test_signed_interop_calls_reach_a_tenant(
    host: tuple[str, dict[str, dict[str, str]], dict[str, int]],
) -> None:
    """A node-to-node call is signed over the path without the host's /t/<org> mount, and
    verified the same way inside a tenant (it used to be verified over the full path, so every
    signed call into a tenant was refused): a partnership between the two tenants goes through."""
    url, tokens, org_ids = host

    def interop(tenant: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"{url}/t/{tenant}/api/interop/v1",
            headers={"Authorization": f"Bearer {tokens[tenant]['operator']}"},
            timeout=60,
        )

    with interop("tenant-x") as x:
        applied = x.post("/node/contract/apply", json={"inst_id": org_ids["tenant-y"]})
        assert applied.status_code == 200, applied.text
        contract = applied.json()["data"]["contract_id"]
    with interop("tenant-y") as y:
        confirmed = y.post(
            "/node/contract/confirm", json={"contract_id": contract, "status": "APPROVED"}
        )
        assert confirmed.status_code == 200, confirmed.text
    with interop("tenant-x") as x:
        seen = x.get("/node/contract/query", params={"contract_id": contract}).json()["data"]
        assert seen["status"] == "APPROVED" and seen["active"]
