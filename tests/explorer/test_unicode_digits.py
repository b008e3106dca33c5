"""Numbers in the explorer's URLs and forms are ASCII digits: ``str.isdigit()`` also accepts
superscript, circled and other scripts' digits ("²", "①", "٣"), on which ``int()`` raises or
reads another number, and the explorer answered those with a 500. Each is now a 400 or a 404 as
for any other malformed id (docs/explorer.md), and plain ASCII ids are read as before. So is a
number of 2^63 or more, which SQLite could not bind (a 500 as well)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from privledger.store.db import make_engine, sqlite_url

from .conftest import build, explorer_app, write

# "²" (within latin-1), "①" (a circled digit), "٣" (Arabic-Indic three: int() reads 3)
DIGITS = {"superscript": "²", "circled": "①", "arabic-indic": "٣"}
ZERO = "0x" + "00" * 32

WHERE = [
    "/explorer/tasks/{}",
    "/explorer/api/tasks/{}",
    "/explorer/tasks?task={}",
    "/explorer/tasks?page={}",
    "/explorer/api/tasks?page={}",
    "/explorer/datasets?page={}",
    "/explorer/settlements?page={}",
    "/explorer/search?q={}",
    "/explorer/api/search?q=%23{}",
    "/explorer/blocks/{}",
    "/explorer/api/blocks/{}",
    "/explorer/blocks?before={}",
    "/explorer/api/blocks?before={}",
    "/explorer/txs?before={}.0",
    "/explorer/api/txs?before=1.{}",
    "/explorer/orgs/{}",
    "/explorer/api/orgs/{}",
    "/explorer/batches/{}",
    "/explorer/api/batches/{}",
    "/explorer/batches?page={}",
    "/explorer/pipelines/{}",
    "/explorer/api/pipelines/{}",
    "/explorer/provenance?task={}",
    "/explorer/api/provenance?task={}",
]


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    engine = make_engine(sqlite_url(tmp_path_factory.mktemp("explorer") / "node.db"))
    write(engine, build(200))
    app = explorer_app(engine)
    app.state.node.settings = SimpleNamespace(max_json_body_bytes=2**20)  # for the verify form
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    engine.dispose()


@pytest.mark.parametrize("digit", DIGITS.values(), ids=DIGITS.keys())
@pytest.mark.parametrize("where", WHERE)
def test_a_number_in_other_digits_is_a_4xx(explorer: TestClient, where: str, digit: str) -> None:
    response = explorer.get(where.format(digit), follow_redirects=False)
    assert response.status_code in (400, 404), response.text[:300]
    if "/api/" in where:
        assert set(response.json()["error"]) == {"code", "message"}


@pytest.mark.parametrize("field", ["task_id", "org_id"])
@pytest.mark.parametrize("digit", DIGITS.values(), ids=DIGITS.keys())
def test_a_verification_naming_other_digits_is_a_400(
    explorer: TestClient, field: str, digit: str
) -> None:
    form = {"task_id": "1", "org_id": "1", "salt": ZERO, "result_sha256": ZERO, field: digit}
    response = explorer.post("/explorer/api/verify", data=form)
    assert response.status_code == 400, response.text[:300]
    assert set(response.json()["error"]) == {"code", "message"}


@pytest.mark.parametrize(
    "where",
    [
        "/explorer/api/blocks/3",
        "/explorer/api/orgs/1",
        "/explorer/api/tasks?page=1",
        "/explorer/api/search?q=3",
        "/explorer/api/blocks?before=9",
        "/explorer/api/txs?before=9.0",
    ],
)
def test_ascii_numbers_are_read_as_before(explorer: TestClient, where: str) -> None:
    assert explorer.get(where).status_code == 200


@pytest.mark.parametrize("where", WHERE)
def test_a_number_beyond_the_index_is_a_4xx(explorer: TestClient, where: str) -> None:
    response = explorer.get(where.format(2**63), follow_redirects=False)
    assert response.status_code in (400, 404), response.text[:300]
