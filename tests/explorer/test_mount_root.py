"""The explorer works wherever it is mounted: at ``/explorer`` on a node of its own and at
``/t/<org>/explorer`` on a tenant host. Every link, form action, script and style sheet of its
pages, every redirect and every URL its JSON gives stays under the mount, and resolves there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from privledger.store.db import make_engine, sqlite_url

from .conftest import build, explorer_app, write
from .crawl import crawl, links

TENANT = "/t/acme"
START = ["", "/tasks", "/provenance", "/search?q=bank", "/cockpit"]
# a task's own page and the verification form read the chain, which the stand-in node has not:
# the e2e tests (tests/e2e/test_tenants.py) open those under a tenant
READS_THE_CHAIN = re.compile(r"/tasks/[0-9]+$|/verify(\?|$)")


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    """The same explorer at the root of its app and mounted under a tenant's prefix."""
    engine = make_engine(sqlite_url(Path(tmp_path_factory.mktemp("mounted")) / "node.db"))
    write(engine, build(3_000))
    host = FastAPI()
    host.mount(TENANT, explorer_app(engine))
    with TestClient(explorer_app(engine)) as alone, TestClient(host) as hosted:
        yield {"": alone, TENANT: hosted}
    engine.dispose()


@pytest.mark.parametrize("root", ["", TENANT])
def test_every_link_of_the_pages_stays_under_the_mount_and_resolves(
    clients: dict[str, TestClient], root: str
) -> None:
    client = clients[root]

    def get(url: str) -> httpx.Response:
        return client.get(url, follow_redirects=False)

    assert crawl(get, f"{root}/explorer", START, max_pages=80, skip=READS_THE_CHAIN) >= 40


@pytest.mark.parametrize("root", ["", TENANT])
def test_redirects_json_urls_and_the_cockpit_script_stay_under_the_mount(
    clients: dict[str, TestClient], root: str
) -> None:
    client, base = clients[root], f"{root}/explorer"
    found = client.get(f"{base}/tasks", params={"task": "3"}, follow_redirects=False)  # by id
    assert found.status_code == 303 and found.headers["location"] == f"{base}/tasks/3"
    only = client.get(f"{base}/search", params={"q": "regulator"}, follow_redirects=False)
    assert only.status_code == 303 and only.headers["location"] == f"{base}/orgs/4"
    matches = client.get(f"{base}/api/search", params={"q": "3"}).json()["matches"]
    assert matches and all(m["url"].startswith(f"{base}/") for m in matches)
    graph = client.get(f"{base}/api/provenance").json()
    assert graph["nodes"] and all(n["url"].startswith(f"{base}/") for n in graph["nodes"])
    # under the mount too, refusals are JSON under its /api and pages elsewhere
    missing = client.get(f"{base}/api/blocks/99999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert client.get(f"{base}/blocks/99999999").headers["content-type"].startswith("text/html")
    cockpit = client.get(f"{base}/cockpit")
    api = [link for _tag, attribute, link in links(cockpit.text) if attribute == "data-api"]
    assert api == [f"{base}/api/cockpit"] and client.get(api[0]).status_code == 200


def test_the_first_and_the_newest_block_link_to_no_block_outside_the_index(
    clients: dict[str, TestClient],
) -> None:
    client, base = clients[TENANT], f"{TENANT}/explorer"
    newest = client.get(f"{base}/api/blocks").json()["blocks"][0]["number"]
    for number in (1, newest):  # the index starts at block 1, where the contracts were deployed
        page = client.get(f"{base}/blocks/{number}")
        blocks = {link for _tag, _attribute, link in links(page.text) if "/blocks/" in link}
        assert blocks, number
        for link in blocks:
            assert client.get(link).status_code == 200, (number, link)
