"""Onboarding portal on the regulator's node: apply, track, review, approve (relayed signed
transactions, or signed by the node with the admin's key), reject, and refusals."""

from __future__ import annotations

import secrets
import subprocess
import sys
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlmodel import Session

from privledger.api.routes.onboarding import issue_consortium_admin_token
from privledger.config import NodeSettings
from privledger.evm.accounts import dev_account
from privledger.evm.contracts import OrgStatus, Role
from privledger.node.keystore import Keystore
from privledger.store.db import make_engine
from tests.e2e.conftest import Running

PORTAL = "regulator"


def portal(running: Running) -> str:
    return f"{running.nodes[PORTAL].url}/api/v1/onboarding/applications"


def settings(running: Running) -> NodeSettings:
    return NodeSettings(org=PORTAL, home=running.settings.var_dir / "nodes" / PORTAL)


@pytest.fixture(scope="module")
def admin(running: Running) -> httpx.Client:
    """The consortium admin (anvil account 0) with a review token from the CLI."""
    node = running.nodes[PORTAL]
    command = [sys.executable, "-m", "privledger.cli", "node", "token", "--org", PORTAL]
    command += ["--home", str(settings(running).home), "--user", "consortium-admin"]
    command += ["--role", "consortium_admin", "--address", dev_account(0).address]
    done = subprocess.run(command, env=node.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)


def application(**overrides: Any) -> dict[str, Any]:
    body = {
        "orgName": f"insurer-{secrets.token_hex(3)}",
        "contactName": "Ada Lovelace",
        "contactEmail": "ada@insurer.example",
        "adminAddress": Account.create().address,
        "nodeEndpoint": "https://node.insurer.example:8443",
        "nodePublicKey": secrets.token_hex(32),
        "requestedRoles": ["data_owner", "operator"],
    }
    return {**body, **overrides}


def submit(running: Running, body: dict[str, Any]) -> tuple[str, str]:
    answer = httpx.post(portal(running), json=body)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "submitted"
    return created["applicationId"], created["trackingSecret"]


def track(running: Running, application_id: str, secret: str) -> dict[str, Any]:
    answer = httpx.get(f"{portal(running)}/{application_id}", headers={"X-Tracking-Secret": secret})
    assert answer.status_code == 200, answer.text
    status: dict[str, Any] = answer.json()
    return status


def test_signed_elsewhere_approval_registers_the_org(running: Running, admin: httpx.Client) -> None:
    body = application(requestedRoles=["auditor"])
    application_id, secret = submit(running, body)
    assert track(running, application_id, secret)["status"] == "submitted"
    wrong = httpx.get(f"{portal(running)}/{application_id}", headers={"X-Tracking-Secret": "guess"})
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "not_found"
    missing = httpx.get(f"{portal(running)}/{application_id}")
    assert missing.status_code == 422 and "error" in missing.json()

    listed = admin.get(portal(running), params={"status": "submitted"}).json()
    assert application_id in [row["applicationId"] for row in listed]
    reviewing = admin.post(f"{portal(running)}/{application_id}/review")
    assert reviewing.json()["status"] == "under_review"
    assert track(running, application_id, secret)["reviewStartedAt"] is not None

    template = admin.get(f"{portal(running)}/{application_id}/transactions").json()
    assert [tx["function"] for tx in template["transactions"]] == ["registerOrg", "grantRoles"]
    w3 = running.w3
    consortium_admin, stranger = dev_account(0), dev_account(1)

    def sign(account: Any, data: str, nonce: int) -> str:
        tx = {
            "to": template["transactions"][0]["to"],
            "data": data,
            "gas": 600_000,
            "gasPrice": w3.eth.gas_price,
            "nonce": nonce,
            "chainId": template["chainId"],
            "value": 0,
        }
        return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()

    datas = [tx["data"] for tx in template["transactions"]]
    nonce = w3.eth.get_transaction_count(consortium_admin.address, "pending")
    by_stranger = [sign(stranger, data, 10**6 + i) for i, data in enumerate(datas)]
    refused = admin.post(
        f"{portal(running)}/{application_id}/approve", json={"signedTransactions": by_stranger}
    )
    assert refused.status_code == 403, refused.text
    tampered = [
        sign(consortium_admin, datas[0][:-2] + "01", nonce),
        sign(consortium_admin, datas[1], nonce + 1),
    ]
    refused = admin.post(
        f"{portal(running)}/{application_id}/approve", json={"signedTransactions": tampered}
    )
    assert refused.status_code == 400, refused.text
    one_only = admin.post(
        f"{portal(running)}/{application_id}/approve",
        json={"signedTransactions": [sign(consortium_admin, datas[0], nonce)]},
    )
    assert one_only.status_code == 400

    signed = [sign(consortium_admin, data, nonce + i) for i, data in enumerate(datas)]
    approved = admin.post(
        f"{portal(running)}/{application_id}/approve", json={"signedTransactions": signed}
    )
    assert approved.status_code == 200, approved.text
    status = track(running, application_id, secret)
    assert status["status"] == "approved" and len(status["txHashes"]) == 2
    assert status["orgId"] == template["expectedOrgId"]

    ledger = running.ledger(0)
    org = ledger.orgs.get_org(status["orgId"])
    assert (org.name, org.admin, org.endpoint) == (
        body["orgName"],
        body["adminAddress"],
        body["nodeEndpoint"],
    )
    assert org.node_key.hex() == body["nodePublicKey"] and org.status is OrgStatus.ACTIVE
    assert ledger.orgs.roles_of(body["adminAddress"]) == Role.ORG_ADMIN | Role.AUDITOR
    for tx_hash in status["txHashes"]:
        assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1


def test_custodial_approval_and_the_rules_around_it(running: Running, admin: httpx.Client) -> None:
    # bank-a's node hosts a portal too, but its keystore never holds the consortium admin's key
    elsewhere = f"{running.nodes['bank-a'].url}/api/v1/onboarding/applications"
    bank_home = running.settings.var_dir / "nodes" / "bank-a"
    with Session(
        make_engine(NodeSettings(org="bank-a", home=bank_home).resolved_database_url)
    ) as s:
        token = issue_consortium_admin_token(
            s, user_name="consortium-admin", address=dev_account(0).address
        )
    created = httpx.post(elsewhere, json=application()).json()
    not_custodial = httpx.post(
        f"{elsewhere}/{created['applicationId']}/approve",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert not_custodial.status_code == 403
    assert not_custodial.json()["error"]["code"] == "not_custodial"

    body = application()
    application_id, secret = submit(running, body)
    node_settings = settings(running)
    Keystore(node_settings.keystore_dir, node_settings.keystore_password).import_key(
        dev_account(0).key
    )
    approved = admin.post(f"{portal(running)}/{application_id}/approve", json={})
    assert approved.status_code == 200, approved.text
    assert approved.json()["reviewer"] == dev_account(0).address
    status = track(running, application_id, secret)
    assert status["status"] == "approved" and status["decidedAt"] is not None
    roles = running.ledger(0).orgs.roles_of(body["adminAddress"])
    assert roles == Role.ORG_ADMIN | Role.DATA_OWNER | Role.OPERATOR
    again = admin.post(f"{portal(running)}/{application_id}/approve", json={})
    assert again.status_code == 409

    # the same name or admin account again: refused up front
    for duplicate in (
        application(orgName=body["orgName"]),
        application(adminAddress=body["adminAddress"]),
        application(orgName="bank-a"),
        application(adminAddress=dev_account(1).address),
    ):
        assert httpx.post(portal(running), json=duplicate).status_code == 409


def test_rejection_is_shown_with_its_reason(running: Running, admin: httpx.Client) -> None:
    application_id, secret = submit(running, application())
    rejected = admin.post(
        f"{portal(running)}/{application_id}/reject", json={"reason": "no licence on file"}
    )
    assert rejected.status_code == 200
    status = track(running, application_id, secret)
    assert (status["status"], status["reason"], status["orgId"]) == (
        "rejected",
        "no licence on file",
        None,
    )
    assert admin.post(f"{portal(running)}/{application_id}/approve", json={}).status_code == 409
    empty = admin.post(f"{portal(running)}/{application_id}/reject", json={"reason": ""})
    assert empty.status_code == 422


def test_reviewing_needs_the_consortium_admin(running: Running) -> None:
    application_id, _ = submit(running, application())
    url = f"{portal(running)}/{application_id}"
    assert httpx.get(portal(running)).status_code == 401
    assert httpx.post(f"{url}/approve", json={}).status_code == 401
    with running.client(PORTAL, "operator") as operator:
        refused = operator.get("/onboarding/applications")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert (
            operator.post(
                f"/onboarding/applications/{application_id}/reject", json={"reason": "x"}
            ).status_code
            == 403
        )
    # a review token of an account that is not the consortium admin on chain
    with Session(make_engine(settings(running).resolved_database_url)) as session:
        token = issue_consortium_admin_token(
            session, user_name="pretender", address=dev_account(5).address
        )
    answer = httpx.get(portal(running), headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert (
        httpx.get(f"{portal(running)}/{'0' * 32}", headers={"X-Tracking-Secret": "x"}).status_code
        == 404
    )
    assert (
        httpx.get(f"{portal(running)}/not-an-id", headers={"X-Tracking-Secret": "x"}).status_code
        == 422
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"orgName": "Insurer A"},
        {"orgName": ""},
        {"orgName": "-leading-dash"},
        {"contactName": ""},
        {"contactEmail": "not-an-email"},
        {"adminAddress": "0x1234"},
        {"adminAddress": "0x" + "0" * 40},
        {"adminAddress": "0xAbCdEf0000000000000000000000000000000001"},  # bad checksum
        {"nodeEndpoint": "ftp://node.example"},
        {"nodeEndpoint": "http://node.example/<script>"},
        {"nodePublicKey": "abcd"},
        {"nodePublicKey": "00" * 32},
        {"nodePublicKey": "zz" * 32},
        {"requestedRoles": ["operator", "operator"]},
        {"requestedRoles": ["org_admin"]},
        {"requestedRoles": "operator"},
        {"unexpected": True},
    ],
)
def test_malformed_applications_are_refused(running: Running, overrides: dict[str, Any]) -> None:
    answer = httpx.post(portal(running), json=application(**overrides))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"


def test_missing_fields_and_non_json_are_refused(running: Running) -> None:
    body = application()
    del body["adminAddress"]
    assert httpx.post(portal(running), json=body).status_code == 422
    garbage = httpx.post(
        portal(running), content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422 and "error" in garbage.json()


def test_the_portal_pages_are_served_locked_down(running: Running) -> None:
    url = running.nodes[PORTAL].url
    for path in ("/portal", "/portal/review"):
        page = httpx.get(url + path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(f"{url}/portal/static/portal.js")
    assert script.status_code == 200 and "innerHTML" not in script.text
