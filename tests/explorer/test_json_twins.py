"""Every explorer page has a JSON twin under /explorer/api (docs/explorer.md): the same data,
names where the page shows names (roles), and the same 4xx for bad ids."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from privledger.explorer import ledger_routes, routes

from .conftest import FEE, ORGS, Explorer, account

# pages that are not data: the overview (a digest of the other pages), login, logout, assets
NOT_DATA = {"/explorer", "/explorer/login", "/explorer/logout", "/explorer/static/{name}"}


def test_every_page_has_a_json_twin() -> None:
    paths = {
        (method, route.path)
        for route in [*routes.router.routes, *ledger_routes.router.routes]
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    pages = {path for method, path in paths if method == "GET"} - NOT_DATA
    missing = {
        path
        for path in pages
        if not path.startswith("/explorer/api/")
        and not {
            (method, path.replace("/explorer/", "/explorer/api/", 1)) for method in ("GET", "POST")
        }
        & paths
    }
    assert missing == set()


def test_orgs_and_accounts_as_json(big: Explorer) -> None:
    orgs = big.client.get("/explorer/api/orgs").json()["orgs"]
    assert [org["name"] for org in orgs] == list(ORGS)
    org = big.client.get("/explorer/api/orgs/1").json()
    assert org["org_id"] == 1 and org["balance_wei"] == 7 * FEE
    roles = [role for member in org["members"] for role in member["roles"]]
    assert roles and set(roles) <= {"org_admin", "data_owner", "operator", "auditor"}
    accounts = big.client.get("/explorer/api/accounts").json()["accounts"]
    assert account(1) in {entry["address"] for entry in accounts}
    one = big.client.get(f"/explorer/api/accounts/{account(1)}").json()
    assert one["org_id"] == 1 and one["roles"]
    assert one["sent"] >= len(one["txs"]) > 0


def test_settlements_and_batches_as_json(big: Explorer) -> None:
    settled = big.client.get("/explorer/api/settlements").json()
    page = big.client.get("/explorer/settlements").text
    assert settled["total"] > 0 and str(settled["total"]) in page
    assert all(row["payments"] for row in settled["rows"])
    assert {b["org_name"] for b in settled["balances"]} <= set(ORGS)
    listed = big.client.get("/explorer/api/batches").json()
    assert listed["total"] > 0
    first = listed["rows"][0]
    assert big.client.get(f"/explorer/api/batches/{first['batch_id']}").json() == first


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/explorer/api/orgs/abc", 400),
        ("/explorer/api/orgs/99", 404),
        ("/explorer/api/accounts/0x123", 400),
        ("/explorer/api/accounts/0x" + "ab" * 20, 404),
        ("/explorer/api/settlements?page=1000000", 404),
        ("/explorer/api/batches?page=-3", 400),
        ("/explorer/api/batches/999999", 404),
    ],
)
def test_bad_ids_are_the_same_4xx_in_json(big: Explorer, path: str, status: int) -> None:
    response = big.client.get(path)
    assert response.status_code == status, response.text[:300]
    assert set(response.json()["error"]) == {"code", "message"}
