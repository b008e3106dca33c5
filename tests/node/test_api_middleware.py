"""The API's ASGI middleware: the JSON body limit (413 in the error shape, the peers' frame uploads
exempt), the limit on calls without credentials (429), and the audit log, whose entry for an
authenticated call is committed before the caller sees the answer and which counts anonymous
calls per route template, method and status."""

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
from privledger.api.middleware import AuditCalls, LimitJsonBodies, LimitUncredentialedCalls
from privledger.node.audit import AuditWriter, canonical, entry_row
from privledger.node.logbook import entry_digest
from privledger.store.db import make_engine, sqlite_url
from privledger.store.models import AuditEntry, utc_now

LIMIT = 1_000
FRAMES = "/api/v1/peer/frames"
API = ("/api/v1/", "/api/interop/")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(sqlite_url(tmp_path / "node.db"))


def _app(writer: AuditWriter, *, rate: float = 1e6, burst: int = 1_000_000) -> FastAPI:
    app = FastAPI()

    @app.api_route("/api/v1/{name}", methods=["GET", "POST"])
    async def named(name: str, request: Request) -> dict[str, str | int]:
        if name == "boom":
            raise RuntimeError("a bug")
        if name == "whoami" or name.startswith("as-"):
            request.state.audit_actor = f"alice 0xabc (operator) {name}"
        if name == "echo":
            return {"name": name, "bytes": len(await request.body())}
        return {"name": name}

    @app.post(FRAMES)
    async def frames(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/explorer")
    async def explorer() -> dict[str, str]:
        return {}

    @app.get("/api/interop/v1/{name}")
    async def interop(name: str) -> dict[str, str]:
        return {"name": name}

    app.add_middleware(LimitJsonBodies, limit=LIMIT, exempt=(FRAMES,))
    app.add_middleware(
        LimitUncredentialedCalls,
        rate=rate,
        burst=burst,
        limited=API,
        exempt=(FRAMES,),
        enveloped=("/api/interop/",),
    )
    app.add_middleware(AuditCalls, writer=writer, audited=API, unaudited=(FRAMES, "/api/v1/docs"))
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
    # a refused body is audited like any other call; anonymous, it is counted under the API's
    # prefix, as no route took it
    assert {(e.subject, e.outcome, e.actor) for e in _entries(engine)} == {
        ("POST /api/v1/*", "413 x1", "anonymous"),
        ("POST /api/v1/{name}", "200 x1", "anonymous"),
    }


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
            "alice 0xabc (operator) whoami",
            "GET /api/v1/whoami",
            "200",
        )
        assert entry.digest == entry_digest(canonical(entry))
        assert client.get("/api/v1/boom").status_code == 500
        assert client.post(FRAMES, content=b"").status_code == 200  # not audited
        assert client.get("/explorer").status_code == 200  # outside the API: not audited
        assert client.get("/api/v1/docs/x").status_code == 404  # under an unaudited prefix
    raised = _entries(engine)[1:]  # anonymous: counted, written when the app shuts down
    assert [(e.subject, e.outcome, e.actor) for e in raised] == [
        ("GET /api/v1/{name}", "500 x1", "anonymous")
    ]


def test_concurrent_calls_are_recorded_once_each_with_their_own_digest(engine: Engine) -> None:
    app = _app(AuditWriter(engine))

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            answers = await asyncio.gather(*(client.get(f"/api/v1/as-{i}") for i in range(60)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(calls()) == [200] * 60
    entries = _entries(engine)
    assert sorted(e.subject for e in entries) == sorted(f"GET /api/v1/as-{i}" for i in range(60))
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


async def _calls_from(
    app: FastAPI, host: str, paths: list[str], headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(host, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        return [await client.get(path, headers=headers) for path in paths]


def test_anonymous_calls_are_counted_per_route_method_and_status(engine: Engine) -> None:
    """Made-up paths and methods do not make entries of their own: an interval's anonymous calls
    are one entry per route template, method and status, written when the interval ends."""
    # the interval outlasts the 76 calls below even on a slow machine (0.3 s did not, in CI)
    writer = AuditWriter(engine, tally_s=3.0)
    app = _app(writer)
    made_up = [f"/api/v1/n{i}" for i in range(50)] + [f"/api/v2/{i}" for i in range(5)]
    before = utc_now()
    answers = asyncio.run(_calls_from(app, "203.0.113.7", [*made_up, "/api/v1/boom"]))
    assert [a.status_code for a in answers] == [200] * 50 + [404] * 5 + [500]

    async def odd_methods() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return [(await client.request(f"X{i}", "/api/v1/x")).status_code for i in range(20)]

    assert asyncio.run(odd_methods()) == [405] * 20
    assert _entries(engine) == []  # nothing yet: counted until the interval ends
    deadline = time.monotonic() + 8
    while len(entries := _entries(engine)) < 2:
        assert time.monotonic() < deadline, "the counts were never written"
        time.sleep(0.05)
    assert {(e.actor, e.subject, e.outcome) for e in entries} == {
        ("anonymous", "GET /api/v1/{name}", "200 x50"),
        ("anonymous", "GET /api/v1/{name}", "500 x1"),
        ("anonymous", "OTHER /api/v1/{name}", "405 x20"),
    }  # /api/v2 is outside the audited API
    assert all(e.digest == entry_digest(canonical(e)) for e in entries)
    assert all(before <= e.at.replace(tzinfo=before.tzinfo) <= utc_now() for e in entries)


def test_calls_without_credentials_are_limited_per_address(engine: Engine) -> None:
    app = _app(AuditWriter(engine), rate=0.5, burst=5)
    paths = [f"/api/v1/n{i}" for i in range(8)]
    first = asyncio.run(_calls_from(app, "203.0.113.7", paths))
    assert [a.status_code for a in first] == [200] * 5 + [429] * 3
    refused = first[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "2"  # one call every 2 s
    # another address has a bucket of its own; an IPv6 host is counted per /64
    assert asyncio.run(_calls_from(app, "203.0.113.8", paths[:5]))[-1].status_code == 200
    v6 = [f"2001:db8::{i}" for i in range(6)]
    assert [asyncio.run(_calls_from(app, host, paths[:1]))[0].status_code for host in v6] == [
        200
    ] * 5 + [429]
    # the interop API refuses in its own envelope; frames are never limited here
    interop = asyncio.run(_calls_from(app, "203.0.113.7", ["/api/interop/v1/x"]))[0]
    assert interop.status_code == 429
    assert interop.json()["code"] == 429 and interop.json()["data"] == {"error": "rate_limited"}

    async def frames() -> int:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return (await client.post(FRAMES, content=b"")).status_code

    assert asyncio.run(frames()) == 200


def test_credentials_that_authenticate_are_never_throttled(engine: Engine) -> None:
    """A caller whose credentials authenticate is never throttled, even at an address whose
    anonymous calls are, or whose failed credentials are; credentials that prove nobody are
    counted like anonymous calls, and a token's first call from such an address waits."""
    app = _app(AuditWriter(engine), rate=0.5, burst=5)
    host, token = "203.0.113.9", {"Authorization": "Bearer pl_x"}
    assert asyncio.run(_calls_from(app, host, ["/api/v1/n"] * 6))[-1].status_code == 429
    authenticated = asyncio.run(_calls_from(app, host, ["/api/v1/whoami"] * 30, token))
    assert {a.status_code for a in authenticated} == {200}
    signed = {"x-auth-sign": "0x00"}  # a route that checks nothing proves nobody
    failing = asyncio.run(_calls_from(app, host, ["/api/v1/n"] * 6, signed))
    assert [a.status_code for a in failing] == [200] * 5 + [429]
    assert asyncio.run(_calls_from(app, host, ["/api/v1/whoami"], token))[0].status_code == 200
    other = {"Authorization": "Bearer pl_y"}
    assert asyncio.run(_calls_from(app, host, ["/api/v1/whoami"], other))[0].status_code == 429
