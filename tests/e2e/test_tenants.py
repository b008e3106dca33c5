"""Tenants (F13): one node process hosts two organisations, each with its own keys, database,
tokens and worker under /t/<org>. A PSI task runs between them; no route of one tenant answers
the other's token, and neither sees the other's datasets, results or audit log. The interop API,
the explorer with its cockpit, the console and the portal work under /t/<org> as they do at a
node's root: the independent interop client runs a whole task between the tenants, an auditor
logs in to a tenant's explorer and every link stays under its prefix, and one tenant's explorer
session opens nothing at the other."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from playwright.sync_api import Browser, expect

from privledger.demo import NodeProcess, prepare_node_home, spawn
from privledger.evm.accounts import dev_account
from privledger.evm.anvil import free_port
from privledger.evm.contracts import Role
from privledger.evm.deploy import deployment_path
from tests.explorer.crawl import crawl, links, under

from .conftest import Running
from .test_browser_portal import apply_in_browser
from .test_explorer import REGULATOR, sign
from .test_interop import CLIENT, no_interop_route_answers_500
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


# --- the interop API, the explorer, the console and the portal under /t/<org> ----------------
Host = tuple[str, dict[str, dict[str, str]], dict[str, int]]
EXPLORER = "/t/tenant-x/explorer"
EXPLORER_START = ["", "/tasks", "/verify", "/provenance", "/orgs", "/datasets", "/cockpit"]


@pytest.fixture(scope="module")
def interop_job(running: Running, host: Host) -> dict[str, Any]:
    """A whole PSI task of tenant-x on tenant-y's data, driven through both tenants' interop
    APIs by the independent client (tests/e2e/interop_client.py) given the tenants' URLs."""
    url, tokens, _ = host
    with (
        api(url, "tenant-x", tokens["tenant-x"]["data_owner"]) as x_owner,
        api(url, "tenant-y", tokens["tenant-y"]["data_owner"]) as y_owner,
    ):
        mine = upload(x_owner, running.data_dir / "telecom.csv", "x-interop")
        theirs = upload(y_owner, running.data_dir / "bank-b.csv", "y-interop")
    x, y = tokens["tenant-x"], tokens["tenant-y"]
    args = [f"{url}/t/tenant-x", x["operator"], f"{url}/t/tenant-y", y["operator"]]
    args += [y["data_owner"], mine, theirs, "phone"]
    done = subprocess.run(
        [sys.executable, str(CLIENT), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_the_interop_client_runs_a_whole_psi_task_between_tenants(
    running: Running, interop_job: dict[str, Any]
) -> None:
    summary = interop_job
    assert summary["contract"]["status"] == "APPROVED" and summary["contract"]["active"]
    assert summary["datasetListed"]
    assert summary["authorisation"]["status"] == "APPROVED" and summary["authorisation"]["usable"]
    assert summary["job"]["status"] == "SETTLED", summary["job"]
    assert set(summary["items"]) == running.people["telecom"] & running.people["bank-b"]
    assert summary["usedAfterJob"] == 1
    assert summary["authorisationAfterTerminate"] == "TERMINATED"
    assert summary["contractAfterTerminate"] == "TERMINATED"


def test_interop_documents_and_refusals_under_a_tenant(host: Host) -> None:
    url, tokens, org_ids = host
    base = f"{url}/t/tenant-y/api/interop/v1"
    document = httpx.get(f"{base}/openapi.json").json()
    assert document["info"]["version"] == "1.0.0" and "/node/contract/apply" in document["paths"]
    assert httpx.get(f"{base}/node/health").json()["data"] == {"status": "ok"}
    anonymous = httpx.post(f"{base}/node/contract/apply", json={"inst_id": 2})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 401
    # the other tenant's token is no token here
    foreign = {"Authorization": f"Bearer {tokens['tenant-x']['operator']}"}
    refused = httpx.post(f"{base}/node/contract/apply", json={"inst_id": 2}, headers=foreign)
    assert refused.status_code == 401
    forged = {
        "x-source-node-id": str(org_ids["tenant-x"]),
        "x-target-node-id": str(org_ids["tenant-y"]),
        "x-nonce": "c" * 32,
        "x-timestamp": str(int(time.time() * 1000)),
        "x-auth-sign": "0x" + "00" * 65,
    }
    unsigned = httpx.post(
        f"{base}/interconn/node/contract/apply",
        content=b'{"contract_id": "' + b"1" * 32 + b'"}',
        headers={"content-type": "application/json", **forged},
    )
    assert unsigned.status_code in (401, 403) and unsigned.json()["code"] == unsigned.status_code


def test_no_interop_route_of_a_tenant_answers_500(host: Host) -> None:
    url, tokens, _org_ids = host
    no_interop_route_answers_500(f"{url}/t/tenant-y", tokens["tenant-y"])


def explorer_login(client: httpx.Client, base: str, account: LocalAccount) -> httpx.Response:
    """Log ``account`` in to the explorer at ``base`` through the JSON login."""
    challenge = client.post(f"{base}/api/challenge")
    assert challenge.status_code == 200, challenge.text
    text = challenge.json()["challenge"]
    body = {"challenge": text, "address": account.address, "signature": sign(account, text)}
    return client.post(f"{base}/api/login", json=body)


def test_a_tenant_explorer_logs_in_and_every_link_stays_under_its_prefix(
    host: Host, interop_job: dict[str, Any]
) -> None:
    url, _tokens, _org_ids = host
    regulator = dev_account(REGULATOR)
    with httpx.Client(base_url=url, timeout=60) as client:
        login = client.get(f"{EXPLORER}/login")
        assert login.status_code == 200 and "node tenant-x" in login.text
        assert [link for _, _, link in links(login.text) if not under(EXPLORER, link)] == []
        text = client.post(f"{EXPLORER}/api/challenge").json()["challenge"]
        form = {"challenge": text, "address": regulator.address, "signature": sign(regulator, text)}
        signed_in = client.post(f"{EXPLORER}/login", data=form)
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == f"{EXPLORER}/tasks"
        cookie = signed_in.headers["set-cookie"].lower()
        assert f"path={EXPLORER}" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        start = [*EXPLORER_START, f"/tasks/{interop_job['job']['id']}"]
        assert crawl(client.get, EXPLORER, start, max_pages=40) == 40
        # logging out ends the session; the login page it leads to is the tenant's
        out = client.post(f"{EXPLORER}/logout")
        assert out.status_code == 303 and out.headers["location"] == f"{EXPLORER}/login"
        assert client.get(f"{EXPLORER}/api/tasks").status_code == 401
        again = client.get(f"{EXPLORER}/tasks")
        assert again.status_code == 303 and again.headers["location"] == f"{EXPLORER}/login"


def test_a_tenant_explorer_verifies_a_result_with_its_form(
    host: Host, interop_job: dict[str, Any]
) -> None:
    url, tokens, org_ids = host
    task_id = interop_job["job"]["id"]
    with api(url, "tenant-x", tokens["tenant-x"]["operator"]) as x_operator:
        result = x_operator.get(f"/tasks/{task_id}/result").json()
    with httpx.Client(base_url=url, timeout=60) as client:
        assert explorer_login(client, EXPLORER, dev_account(REGULATOR)).status_code == 200
        form_page = client.get(f"{EXPLORER}/verify", params={"task": task_id})
        actions = [link for tag, _, link in links(form_page.text) if tag == "form"]
        assert f"{EXPLORER}/verify" in actions
        form = {"task_id": str(task_id), "org_id": str(org_ids["tenant-x"]), "salt": ""}
        files = {"result_file": ("result.json", json.dumps(result).encode(), "application/json")}
        verified = client.post(f"{EXPLORER}/verify", data=form, files=files)
        assert verified.status_code == 200 and "<strong>Verified</strong>" in verified.text
        assert f'href="{EXPLORER}/tasks/{task_id}"' in verified.text


def test_a_tenant_operator_sees_the_cockpit_and_its_charts(host: Host) -> None:
    url, _tokens, _org_ids = host
    with httpx.Client(base_url=url, timeout=60) as client:
        login = explorer_login(client, EXPLORER, dev_account(TENANTS["tenant-x"]))
        assert login.status_code == 200, login.text
        page = client.get(f"{EXPLORER}/cockpit")
        assert page.status_code == 200
        found = {attribute: link for _tag, attribute, link in links(page.text)}
        assert found["data-api"] == f"{EXPLORER}/api/cockpit"
        assert f"{EXPLORER}/static/cockpit.js" in {link for _, _, link in links(page.text)}
        snapshot = client.get(found["data-api"]).json()
        assert len(snapshot["charts"]) == 6
        assert all(chart.startswith("<svg") for chart in snapshot["charts"].values())
        health = {row["org_name"]: row for row in snapshot["health"]}
        assert health["tenant-x"]["up"] and health["tenant-x"]["endpoint"] == f"{url}/t/tenant-x"
        # an operator is no auditor: the explorer refuses, on the tenant's own page
        assert client.get(f"{EXPLORER}/blocks").status_code == 403


def test_a_tenant_explorer_session_opens_nothing_at_another_tenant(host: Host) -> None:
    url, _tokens, _org_ids = host
    other = "/t/tenant-y/explorer"
    with httpx.Client(base_url=url, timeout=60) as client:
        assert explorer_login(client, EXPLORER, dev_account(REGULATOR)).status_code == 200
        session = client.cookies["pl_explorer"]
        assert client.get(f"{EXPLORER}/api/tasks").status_code == 200
        # the cookie is scoped to tenant-x's explorer: a browser does not send it to tenant-y
        assert client.get(f"{other}/api/tasks").status_code == 401
        page = client.get(f"{other}/tasks")
        assert page.status_code == 303 and page.headers["location"] == f"{other}/login"
    # and sent there anyway, tenant-y knows no such session
    forced = httpx.get(f"{url}{other}/api/tasks", cookies={"pl_explorer": session})
    assert forced.status_code == 401 and forced.json()["error"]["code"] == "unauthorized"


def test_console_and_portal_pages_load_their_assets_under_a_tenant(host: Host) -> None:
    url, _tokens, _org_ids = host
    root = "/t/tenant-x"
    for path in ("/console", "/portal", "/portal/review"):
        page = httpx.get(f"{url}{root}{path}")
        assert page.status_code == 200 and f'data-root="{root}"' in page.text, path
        for tag, _attribute, link in links(page.text):
            assert under(root, link), (path, link)
            if tag in ("script", "link"):
                assert httpx.get(f"{url}{link}").status_code == 200, link


def test_paths_outside_every_tenant_are_404s_in_the_error_format(host: Host) -> None:
    """The host itself answers like a node: what no tenant serves (an explorer at the root, an
    unknown tenant) is a 404 with {"error": {"code", "message"}}."""
    url, _tokens, _org_ids = host
    for path in ("/explorer", "/explorer/login", "/console", "/t/nobody/api/v1/health"):
        response = httpx.get(f"{url}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found", (path, response.text)


@pytest.mark.browser
def test_a_browser_uses_a_tenants_explorer_cockpit_console_and_portal(
    browser: Browser, host: Host
) -> None:
    url, tokens, _org_ids = host
    operator = dev_account(TENANTS["tenant-x"])
    page = browser.new_page(base_url=url, viewport={"width": 1280, "height": 900})
    page.goto(f"{EXPLORER}/login")
    page.fill("#address", operator.address)
    page.fill("#signature", sign(operator, page.input_value("#challenge")))
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{url}{EXPLORER}/cockpit")
    expect(page.locator(".chart-box svg.chart")).to_have_count(6)
    # the page's script polls the tenant's JSON twin and redraws
    expect(page.locator("body")).to_have_attribute("data-refreshed", "1", timeout=15_000)
    page.click("header .who button")  # log out
    expect(page).to_have_url(f"{url}{EXPLORER}/login")
    # the workflow console calls the tenant's API with the tenant's token
    page.goto("/t/tenant-x/console")
    page.fill("#token", tokens["tenant-x"]["operator"])
    page.click("#token-form button")
    expect(page.locator("#workspace")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("tenant-x")
    # the onboarding portal's script posts the application to the tenant's API
    application_id, secret = apply_in_browser(
        page, f"clinic-{secrets.token_hex(3)}", Account.create().address, root="/t/tenant-x"
    )
    tracking = {"X-Tracking-Secret": secret}
    for tenant, status in (("tenant-x", 200), ("tenant-y", 404)):
        path = f"{url}/t/{tenant}/api/v1/onboarding/applications/{application_id}"
        assert httpx.get(path, headers=tracking).status_code == status, tenant
    page.close()
