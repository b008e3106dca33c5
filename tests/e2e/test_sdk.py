"""The typed SDK against real node processes: answers parse into the API's models, each refusal
is its own exception, and a project goes from creation through another organisation's inbox to
membership, as the SDK's calls alone drive it."""

from __future__ import annotations

import secrets

import pytest

from privledger.sdk import (
    Forbidden,
    NodeClient,
    NodeUnreachable,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from privledger.wire.assets import DatasetOut

from .conftest import Running


def sdk(running: Running, org: str, role: str = "operator") -> NodeClient:
    node = running.nodes[org]
    return NodeClient(node.url, node.tokens[role])


def test_typed_answers_and_errors_from_a_node(running: Running) -> None:
    bank_id = running.org_ids["bank-a"]
    with sdk(running, "bank-a", "data_owner") as owner:
        me = owner.me()
        assert (me.role, me.org_id) == ("data_owner", bank_id)
        assert owner.health().org == "bank-a"
        assert {org.name for org in owner.orgs()} >= {"bank-a", "telecom", "bank-b"}
        assert "ecdh" in {protocol for c in owner.components() for protocol in c.protocols}
        rows = owner.register_rows(["phone", "limit"], [["+861", 5], ["+862", 7]], name="sdk-e2e")
        assert isinstance(rows, DatasetOut) and (rows.row_count, rows.level) == (2, 4)
        assert owner.dataset(rows.dataset_id) == rows
        logged = owner.audit_log(action="api", limit=3)
        assert 0 < len(logged) <= 3 and logged == sorted(logged, key=lambda entry: entry.id)
        assert owner.audit_log(after=logged[-1].id, limit=1)[0].id > logged[-1].id
        with pytest.raises(ValidationFailed) as invalid:
            owner.register_rows(["phone"], [["+86"]], name="not a name!")
        assert invalid.value.status == 422
    with sdk(running, "bank-a") as operator, pytest.raises(Forbidden) as forbidden:
        operator.approvals()  # a data owner's
    assert forbidden.value.status == 403
    with sdk(running, "bank-a") as operator, pytest.raises(NotFound):
        operator.task(10**12)
    stranger = NodeClient(running.nodes["bank-a"].url, secrets.token_urlsafe(32))
    with stranger, pytest.raises(Unauthorized):
        stranger.datasets()
    nowhere = NodeClient("http://127.0.0.1:9", "t", timeout_s=5)
    with nowhere, pytest.raises(NodeUnreachable):
        nowhere.health()


def test_a_project_through_the_sdk(running: Running) -> None:
    bank_id, telecom_id = running.org_ids["bank-a"], running.org_ids["telecom"]
    name = f"sdk-{secrets.token_hex(3)}"
    with sdk(running, "bank-a") as bank:
        created = bank.create_project(name)
        assert [(m.org_id, m.owner) for m in created.members] == [(bank_id, True)]
        invited = bank.invite(created.project_id, telecom_id)
        assert {m.org_id: m.status for m in invited.members}[telecom_id] == "invited"
    with sdk(running, "telecom") as telecom:
        waiting = [
            item
            for item in telecom.inbox()
            if item.kind == "project_invitation" and item.project_id == created.project_id
        ]
        assert [(item.from_org, item.project_name) for item in waiting] == [(bank_id, name)]
        joined = telecom.decide_invitation(created.project_id, "accept")
        assert joined.my_status == "member"
        listed = {summary.project_id: summary.my_status for summary in telecom.projects()}
        assert listed[created.project_id] == "member"
    with sdk(running, "bank-a") as bank:
        closed = bank.close_project(created.project_id)
    assert closed.status == "closed"
