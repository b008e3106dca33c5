"""Text the node's store cannot hold is a 4xx, never a 500: PostgreSQL refuses a NUL character in
a text column (SQLite keeps it), and the schemathesis fuzz found the onboarding portal answering
500 for a contact name holding one. Run on both stores."""

from __future__ import annotations

import secrets

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Column, Integer, MetaData, Table, Text, create_engine, make_url

from privledger.api.errors import install_error_handlers
from privledger.node.context import NodeContext
from privledger.store.db import make_engine

CONTROL = ["\x00", "\x1b[2J", "\n"]


def application(**fields: str) -> dict[str, object]:
    return {
        "orgName": f"applicant-{secrets.token_hex(3)}",
        "contactName": "Ada Lovelace",
        "contactEmail": "ada@example.org",
        "adminAddress": "0x" + secrets.token_hex(20),
        "nodeEndpoint": "http://10.0.0.9:8000",
        "nodePublicKey": secrets.token_hex(32),
        **fields,
    }


@pytest.mark.parametrize("control", CONTROL)
@pytest.mark.parametrize("field", ["contactName", "contactEmail"])
def test_an_application_with_control_characters_is_refused(
    store_url: str, telecom_api: tuple[TestClient, NodeContext], field: str, control: str
) -> None:
    client, _ = telecom_api
    value = {"contactName": "Ada", "contactEmail": "ada@example.org"}[field]
    response = client.post(
        "/api/v1/onboarding/applications", json=application(**{field: value + control + "x"})
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert client.post("/api/v1/onboarding/applications", json=application()).status_code == 201


# a table of this test's own, outside the node's models (whose migrations a test compares)
NOTES = Table("note", MetaData(), Column("id", Integer, primary_key=True), Column("text", Text))


def test_a_value_the_store_cannot_hold_is_a_400(store_url: str) -> None:
    """Whatever route lets such a value through, the answer is the error envelope with a 400."""
    engine = make_engine(store_url)
    NOTES.create(engine)
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/notes", status_code=201)
    def add(text: str) -> None:
        with engine.begin() as connection:
            connection.execute(NOTES.insert().values(text=text))

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/notes", params={"text": "a\x00b"})
    engine.dispose()
    if make_url(store_url).get_backend_name() == "postgresql":
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "unstorable_value"
    else:  # SQLite stores it
        assert response.status_code == 201, response.text


def test_a_pool_without_a_free_connection_is_a_503_to_retry(store_url: str) -> None:
    """A database whose connections are all held answers the waiting caller 503 ``busy`` with
    Retry-After, after the pool's timeout: a load to wait out, not an internal error."""
    engine = make_engine(store_url)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/busy")
    def busy() -> None:
        crowded = create_engine(engine.url, pool_size=1, max_overflow=0, pool_timeout=0.1)
        try:
            with crowded.connect(), crowded.connect():  # the second waits for the first
                pass
        finally:
            crowded.dispose()

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/busy")
    engine.dispose()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "busy"
    assert response.headers["Retry-After"] == "1"
