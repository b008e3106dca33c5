"""Hostile values in the signed node-to-node headers (``privledger.node.peer_auth``).

Anyone can make a key and sign a call for an organisation id of their choosing; the receiving
node must refuse an id that is no organisation with a clear 401 before it asks the chain. An id
of 2^256 or more used to reach ``OrgRegistry.hasOrgRole``, whose ABI encoding raised, and the peer
and interop routes answered 500.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient

from privledger.api.errors import install_error_handlers
from privledger.api.routes.interop_common import INTEROP_PREFIX, INTEROP_SCHEME
from privledger.evm.contracts import Role
from privledger.node.context import NodeContext
from privledger.node.peer_auth import ANY_NODE, PEER_SCHEME, signed_headers

pytestmark = pytest.mark.security

SPEC = "/api/v1/peer/tasks/1/spec"
NOT_ORG_IDS = {"0": 0, "2^63": 2**63, "2^64": 2**64, "2^256": 2**256, "10^80": 10**80}


@pytest.mark.parametrize("source", NOT_ORG_IDS.values(), ids=NOT_ORG_IDS.keys())
def test_a_peer_call_for_an_id_no_organisation_has_is_refused(
    telecom_api: tuple[TestClient, NodeContext], source: int
) -> None:
    client = TestClient(telecom_api[0].app, raise_server_exceptions=False)
    headers = signed_headers(Account.create(), PEER_SCHEME, SPEC, source, ANY_NODE, b"")
    response = client.get(SPEC, headers=headers)
    assert response.status_code in (401, 403), response.text[:300]
    assert set(response.json()["error"]) == {"code", "message"}


@pytest.mark.parametrize("target", [2**63, 2**256], ids=["2^63", "2^256"])
def test_a_peer_call_to_an_id_no_organisation_has_is_refused(
    telecom_api: tuple[TestClient, NodeContext], target: int
) -> None:
    client = TestClient(telecom_api[0].app, raise_server_exceptions=False)
    own = telecom_api[1].org_id
    headers = signed_headers(Account.create(), PEER_SCHEME, SPEC, own, target, b"")
    response = client.get(SPEC, headers=headers)
    assert response.status_code in (401, 403), response.text[:300]
    assert set(response.json()["error"]) == {"code", "message"}


def test_an_interop_call_for_an_id_no_organisation_has_is_refused(
    telecom_api: tuple[TestClient, NodeContext],
) -> None:
    client = TestClient(telecom_api[0].app, raise_server_exceptions=False)
    path, body = f"{INTEROP_PREFIX}/interconn/node/contract/apply", b"{}"
    own = telecom_api[1].org_id
    headers = signed_headers(Account.create(), INTEROP_SCHEME, path, 2**256, own, body)
    response = client.post(
        path, content=body, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 401, response.text[:300]
    assert response.json()["code"] == 401


def test_a_value_the_chain_cannot_encode_is_a_400_wherever_it_is_passed(
    telecom_api: tuple[TestClient, NodeContext],
) -> None:
    """The safety net behind every route: web3 refusing to encode a call is the caller's input."""
    orgs = telecom_api[1].ledger.orgs
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/role")
    def role() -> bool:
        return orgs.has_org_role(2**256, Account.create().address, Role.OPERATOR)

    response = TestClient(app, raise_server_exceptions=False).get("/role")
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == "invalid_request"
