"""Unknown ids, malformed hashes, cursors and page numbers get a clear 4xx, as a page or as JSON,
never a 500; and an operator sees the cockpit but none of the explorer."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from privledger.evm.contracts import Role
from privledger.explorer import cockpit_routes, ledger_routes, routes

from .conftest import Explorer, explorer_app

ZERO = "0x" + "00" * 32

BAD = [
    ("/explorer/blocks?before=abc", 400),
    ("/explorer/blocks?before=-1", 400),
    ("/explorer/blocks/x", 400),
    ("/explorer/blocks/99999999", 404),
    ("/explorer/txs?before=12", 400),
    ("/explorer/txs?before=1.x", 400),
    ("/explorer/txs/0x12", 400),
    ("/explorer/txs/" + "0x" + "zz" * 32, 400),
    (f"/explorer/txs/{ZERO}", 404),
    ("/explorer/tasks?page=0", 400),
    ("/explorer/tasks?page=x", 400),
    ("/explorer/tasks?page=999999", 404),
    ("/explorer/datasets?page=99999", 404),
    ("/explorer/datasets/0x1234", 400),
    (f"/explorer/datasets/{ZERO}", 404),
    ("/explorer/orgs/abc", 400),
    ("/explorer/orgs/99", 404),
    ("/explorer/accounts/0x123", 400),
    ("/explorer/accounts/0x" + "ab" * 20, 404),
    ("/explorer/settlements?page=1000000", 404),
    ("/explorer/batches?page=-3", 400),
    ("/explorer/batches/999999", 404),
    ("/explorer/search?q=0xzz", 400),
    ("/explorer/search?q=" + "9" * 30, 400),
    ("/explorer/search?q=%3Cscript%3E", 400),
    ("/explorer/search?q=nothing-like-this", 404),
    ("/explorer/provenance?task=x", 400),
    ("/explorer/provenance?task=99999999", 404),
    ("/explorer/provenance?dataset=0x12", 400),
    ("/explorer/no-such-page", 404),
]


@pytest.mark.parametrize(("path", "status"), BAD)
def test_bad_input_is_a_clear_4xx_page(big: Explorer, path: str, status: int) -> None:
    response = big.client.get(path, follow_redirects=False)
    assert response.status_code == status, response.text[:300]
    if path != "/explorer/no-such-page":
        assert "text/html" in response.headers["content-type"]
        assert 'class="card narrow"' in response.text or "alert bad" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/explorer/api/blocks?before=abc",
        "/explorer/api/blocks/x",
        "/explorer/api/txs/0x12",
        f"/explorer/api/txs/{ZERO}",
        "/explorer/api/tasks?page=0",
        "/explorer/api/datasets/0x12",
        "/explorer/api/search?q=0xzz",
        "/explorer/api/search",
        "/explorer/api/provenance?task=zz",
    ],
)
def test_bad_input_is_a_4xx_json_error(big: Explorer, path: str) -> None:
    response = big.client.get(path)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert set(response.json()["error"]) == {"code", "message"}


def test_an_operator_sees_the_cockpit_and_none_of_the_explorer(big: Explorer) -> None:
    engine = big.client.app.state.node.engine  # type: ignore[attr-defined]
    with TestClient(explorer_app(engine, Role.OPERATOR)) as operator:
        cockpit = operator.get("/explorer/cockpit")
        assert cockpit.status_code == 200 and "Operations cockpit" in cockpit.text
        assert 'href="/explorer/blocks"' not in cockpit.text  # no explorer navigation
        for path in ("/explorer", "/explorer/blocks", "/explorer/txs", "/explorer/datasets"):
            assert operator.get(path).status_code == 403, path
        refused = operator.get("/explorer/api/blocks")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


PUBLIC = {"/explorer/login", "/explorer/static/{name}", "/explorer/api/challenge"}
VIEWER = {"/explorer/cockpit", "/explorer/api/cockpit", "/explorer/logout", "/explorer/api/login"}


def test_every_explorer_route_refuses_an_operator(big: Explorer) -> None:
    engine = big.client.app.state.node.engine  # type: ignore[attr-defined]
    samples = {"{task_id}": "1", "{number}": "1", "{org_id}": "1", "{batch_id}": "1"}
    samples |= {"{tx_hash}": ZERO, "{dataset_id}": ZERO, "{address}": "0x" + "ab" * 20}
    checked = 0
    with TestClient(explorer_app(engine, Role.OPERATOR)) as operator:
        for route in [
            *routes.router.routes,
            *ledger_routes.router.routes,
            *cockpit_routes.router.routes,
        ]:
            assert isinstance(route, APIRoute)
            if route.path in PUBLIC | VIEWER:
                continue
            path = route.path
            for name, value in samples.items():
                path = path.replace(name, value)
            for method in route.methods:
                response = operator.request(method, path)
                assert response.status_code == 403, (method, route.path, response.status_code)
                checked += 1
    assert checked >= 30
