"""Admission of API tokens: a token admitted a moment ago passes again without a database or chain
read, for at most ``ROLE_CACHE_S``; only for the roles it was admitted for, and only by the node
(database) that admitted it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from privledger.api import deps
from privledger.api.app import create_app
from privledger.api.deps import hash_token, issue_token
from privledger.node.context import NodeContext
from privledger.store.db import make_engine, sqlite_url
from privledger.store.models import ApiToken

API = tuple[TestClient, NodeContext]


def _revoke(node: NodeContext, token: str) -> None:
    with Session(node.engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()
        row.revoked = True
        session.add(row)
        session.commit()


def test_a_revoked_token_is_refused_once_its_admission_expires(
    telecom_api: API, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "ROLE_CACHE_S", 0.5)
    client, node = telecom_api
    token = str(client.headers["Authorization"]).removeprefix("Bearer ")
    assert client.get("/api/v1/tasks").status_code == 200
    _revoke(node, token)
    assert client.get("/api/v1/tasks").status_code == 200  # admitted a moment ago
    time.sleep(0.6)
    refused = client.get("/api/v1/tasks")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"


def test_an_admission_holds_only_for_its_roles_and_its_node(
    telecom_api: API, tmp_path: Path
) -> None:
    client, node = telecom_api
    assert client.get("/api/v1/tasks").status_code == 200  # admitted as a member
    refused = client.get("/api/v1/audit")  # data owners, auditors and admins only
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    # another node (its own database) never saw this token
    other = dataclasses.replace(node, engine=make_engine(sqlite_url(tmp_path / "other.db")))
    with TestClient(create_app(other)) as elsewhere:
        answer = elsewhere.get(
            "/api/v1/tasks", headers={"Authorization": client.headers["Authorization"]}
        )
        assert answer.status_code == 401
        with Session(other.engine) as session:
            own = issue_token(
                session, user_name="op", address=node.account.address, role="operator"
            )
        assert (
            elsewhere.get("/api/v1/tasks", headers={"Authorization": f"Bearer {own}"}).status_code
            == 200
        )
