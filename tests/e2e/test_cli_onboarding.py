"""An organisation joins from the command line (issue 23, item 5): `node init` and `onboarding
apply` (its account, X25519 key and endpoint read from the home, as `node identity` prints them),
then the consortium admin's `onboarding approve`, which fills in nonces, gas and the chain id and
signs here (non-custodial), and the applicant's `onboarding status`. Real portal, real chain."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from privledger.cli import app
from privledger.evm.accounts import dev_account
from privledger.evm.contracts import OrgStatus, Role

from .conftest import Running

PORTAL = "regulator"


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(app, ["--output", "json", *args], env=env)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout) if result.stdout.startswith(("{", "[")) else result.stdout


def test_an_organisation_applies_and_is_approved_from_the_command_line(
    running: Running, tmp_path: Path
) -> None:
    portal = running.nodes[PORTAL]
    org, home = f"insurer-{secrets.token_hex(3)}", str(tmp_path / "insurer")
    account = cli("node", "init", "--org", org, "--home", home, "--new-key")["account"]
    endpoint = {"PRIVLEDGER_PUBLIC_URL": "https://node.insurer.example:8443"}
    identity = cli("node", "identity", "--org", org, "--home", home, env=endpoint)
    applied = cli(
        *("onboarding", "apply", "--org", org, "--home", home, "--portal", portal.url),
        *("--contact-name", "Ada Lovelace", "--contact-email", "ada@insurer.example"),
        *("--role", "data_owner", "--role", "operator"),
        env=endpoint,
    )
    application, secret = applied["applicationId"], applied["trackingSecret"]

    admin_home = str(running.settings.var_dir / "nodes" / PORTAL)
    token = cli(
        *("node", "token", "--org", PORTAL, "--home", admin_home, "--user", "cli-admin"),
        *("--role", "consortium_admin", "--address", dev_account(0).address),
        env=portal.env,
    ).strip()
    listed = cli("onboarding", "list", "--url", portal.url, "--token", token)
    assert application in [row["applicationId"] for row in listed]
    rpc_url = str(running.w3.provider.endpoint_uri)
    approved = cli(
        *("onboarding", "approve", application, "--url", portal.url, "--token", token),
        *("--rpc-url", rpc_url),
    )
    assert approved["status"] == "approved" and len(approved["txHashes"]) == 2

    status = cli("onboarding", "status", application, "--secret", secret, "--portal", portal.url)
    assert status["status"] == "approved" and status["orgId"] == approved["orgId"]
    orgs = running.ledger(0).orgs
    registered = orgs.get_org(status["orgId"])
    assert (registered.name, registered.admin, registered.status) == (
        org,
        account,
        OrgStatus.ACTIVE,
    )
    assert "0x" + registered.node_key.hex() == identity["nodePublicKey"]
    assert registered.endpoint == "https://node.insurer.example:8443"
    assert orgs.roles_of(account) == Role.ORG_ADMIN | Role.DATA_OWNER | Role.OPERATOR
