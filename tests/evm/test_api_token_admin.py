"""API tokens end: each has a lifetime, and an organisation admin lists the node's tokens (never
their secrets) and revokes one, through the API or the node's command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from privledger.api import deps
from privledger.api.deps import issue_token
from privledger.node.context import NodeContext
from privledger.store.models import ApiToken

API = tuple[TestClient, NodeContext]


def _token(node: NodeContext, role: str, ttl: timedelta | None = timedelta(days=1)) -> str:
    with Session(node.engine) as session:
        return issue_token(
            session, user_name=role, address=node.account.address, role=role, ttl=ttl
        )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_expired_token_is_refused(telecom_api: API) -> None:
    client, node = telecom_api
    expired = _token(node, "operator", ttl=timedelta(seconds=-1))
    refused = client.get("/api/v1/tasks", headers=_bearer(expired))
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    fresh = _token(node, "operator")
    assert client.get("/api/v1/tasks", headers=_bearer(fresh)).status_code == 200
    with Session(node.engine) as session:
        rows = session.exec(select(ApiToken)).all()  # every token issued has an end
        assert all(row.expires_at is not None for row in rows)


def test_an_org_admin_lists_and_revokes_tokens(
    telecom_api: API, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "ROLE_CACHE_S", 0.2)
    client, node = telecom_api
    admin = _token(node, "org_admin")
    operator = str(client.headers["Authorization"]).removeprefix("Bearer ")
    assert client.get("/api/v1/tokens").status_code == 403  # operators do not manage tokens

    listed = client.get("/api/v1/tokens", headers=_bearer(admin))
    assert listed.status_code == 200, listed.text
    assert "pl_" not in listed.text  # never a secret
    roles = {entry["role"]: entry for entry in listed.json()}
    assert set(roles) == {"operator", "org_admin"}
    assert all(entry["expiresAt"] and not entry["revoked"] for entry in listed.json())

    assert client.get("/api/v1/tasks").status_code == 200
    revoked = client.post(
        f"/api/v1/tokens/{roles['operator']['id']}/revoke", headers=_bearer(admin)
    )
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    time.sleep(0.3)  # the operator's admission has run out
    assert client.get("/api/v1/tasks").status_code == 401
    assert operator  # the revoked token is the fixture's own
    missing = client.post("/api/v1/tokens/999999/revoke", headers=_bearer(admin))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_the_node_command_line_lists_and_revokes(telecom_api: API) -> None:
    _client, node = telecom_api
    home = node.settings.home
    env_cli = [sys.executable, "-m", "privledger.cli", "node"]
    where = ["--org", "telecom", "--home", str(home)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*env_cli, *args, *where], capture_output=True, text=True, timeout=120, check=False
        )

    listed = cli("tokens")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert entry["role"] == "operator" and entry["revoked"] is False
    revoked = cli("revoke-token", str(entry["id"]))
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(cli("tokens").stdout)[0]["revoked"] is True
    assert cli("revoke-token", "424242").returncode == 1
