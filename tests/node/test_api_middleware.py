"""The API's ASGI middleware: the JSON body limit (413 in the error shape, the peers' frame uploads
exempt) and the audit log, whose entry for a call is committed before the caller sees the answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from privledger.api.errors import error_body
from privledger.api.middleware import AuditCalls, LimitJsonBodies
from privledger.node.audit import AuditWriter, canonical, entry_row
from privledger.node.logbook import entry_digest
from privledger.store.db import make_engine, sqlite_url
from privledger.store.models import AuditEntry

LIMIT = 1_000
FRAMES = "/api/v1/peer/frames"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(sqlite_url(tmp_path / "node.db"))


def _app(writer: AuditWriter) -> FastAPI:
    app = FastAPI()

    @app.api_route("/api/v1/{name}", methods=["GET", "POST"])
    async def named(name: str, request: Request) -> dict[str, str | int]:
        if name == "boom":
            raise RuntimeError("a bug")
        if name == "whoami":
            request.state.audit_actor = "alice 0xabc (operator)"
        if name == "echo":
            return {"name": name, "bytes": len(await request.body())}
        return {"name": name}

    @app.post(FRAMES)
    async def frames(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/explorer")
    async def explorer() -> dict[str, str]:
        return {}

    app.add_middleware(LimitJsonBodies, limit=LIMIT, exempt=(FRAMES,))
    app.add_middleware(
        AuditCalls, writer=writer, audited=("/api/v1/",), unaudited=(FRAMES, "/api/v1/docs")
    )
    return app


def _entries(engine: Engine) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


def test_a_declared_body_over_the_limit_is_a_413_except_for_frames(engine: Engine) -> None:
    with TestClient(_app(AuditWriter(engine))) as client:
        too_large = client.post("/api/v1/grants", content=b"x" * (LIMIT + 1))
        assert too_large.status_code == 413
        assert too_large.json() == error_body(
            "too_large", f"a request body is at most {LIMIT} bytes"
        )
        assert client.post("/api/v1/grants", content=b"x" * LIMIT).status_code == 200
        frames = client.post(FRAMES, content=b"x" * (LIMIT * 3))
        assert frames.status_code == 200 and frames.json() == {"bytes": LIMIT * 3}
    refused = _entries(engine)[0]  # a refused body is audited like any other call
    assert (refused.subject, refused.outcome, refused.action) == (
        "POST /api/v1/grants",
        "413",
        "authorisation",
    )


def test_a_chunked_body_over_the_limit_is_a_413_before_the_app_reads_it(engine: Engine) -> None:
    """Without a Content-Length (chunked transfer encoding) the limit holds all the same, and a
    body within it reaches the route whole."""

    def chunks(total: int) -> Iterator[bytes]:
        for _ in range(total // 100):
            yield b"x" * 100

    with TestClient(_app(AuditWriter(engine))) as client:
        too_large = client.post("/api/v1/grants", content=chunks(LIMIT + 100))
        assert too_large.request.headers.get("transfer-encoding") == "chunked"
        assert too_large.status_code == 413
        assert too_large.json()["error"]["code"] == "too_large"
        within = client.post("/api/v1/echo", content=chunks(LIMIT))
        assert within.status_code == 200 and within.json() == {"name": "echo", "bytes": LIMIT}
        bogus = client.post("/api/v1/grants", content=b"{}", headers={"Content-Length": "-1, 2"})
        assert bogus.status_code in (400, 413)
        frames = client.post(FRAMES, content=chunks(LIMIT * 3))
        assert frames.status_code == 200 and frames.json() == {"bytes": LIMIT * 3}


def test_each_call_is_in_the_log_when_its_answer_arrives(engine: Engine) -> None:
    with TestClient(_app(AuditWriter(engine)), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/whoami").status_code == 200
        (entry,) = _entries(engine)  # committed before the answer started
        assert (entry.action, entry.actor, entry.subject, entry.outcome) == (
            "api",
            "alice 0xabc (operator)",
            "GET /api/v1/whoami",
            "200",
        )
        assert entry.digest == entry_digest(canonical(entry))
        assert client.get("/api/v1/boom").status_code == 500
        assert client.post(FRAMES, content=b"").status_code == 200  # not audited
        assert client.get("/explorer").status_code == 200  # outside the API: not audited
        assert client.get("/api/v1/docs/x").status_code == 404  # under an unaudited prefix
    raised = _entries(engine)[1:]
    assert [(e.subject, e.outcome, e.actor) for e in raised] == [
        ("GET /api/v1/boom", "500", "anonymous")
    ]


def test_concurrent_calls_are_recorded_once_each_with_their_own_digest(engine: Engine) -> None:
    app = _app(AuditWriter(engine))

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            answers = await asyncio.gather(*(client.get(f"/api/v1/n{i}") for i in range(60)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(calls()) == [200] * 60
    entries = _entries(engine)
    assert sorted(e.subject for e in entries) == sorted(f"GET /api/v1/n{i}" for i in range(60))
    assert all(e.digest == entry_digest(canonical(e)) for e in entries)


def test_a_call_whose_entry_cannot_be_written_is_not_answered_as_a_success(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE audit_entry")
    with TestClient(_app(AuditWriter(engine)), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/whoami").status_code == 500


def test_the_writer_thread_ends_when_idle_and_starts_again(engine: Engine) -> None:
    writer = AuditWriter(engine)
    writer.IDLE_S = 0.05
    writer.submit(entry_row("api", "a", "s", "200")).result(timeout=5)
    deadline = time.monotonic() + 5
    while writer._thread is not None:
        assert time.monotonic() < deadline, "the idle writer thread never ended"
        time.sleep(0.01)
    writer.submit(entry_row("api", "a", "s", "200")).result(timeout=5)
    assert len(_entries(engine)) == 2
