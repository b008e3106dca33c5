from __future__ import annotations

import gc
import platform

import pytest

from privledger.api.server import freeze_startup_objects, tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_allocator_tuning_is_accepted_by_glibc() -> None:
    assert tune_allocator() is True


def test_start_up_objects_leave_the_collectors_sight() -> None:
    before = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_route_tables_are_built_before_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import fastapi.routing
    from fastapi import APIRouter, FastAPI
    from fastapi.testclient import TestClient

    from privledger.api.server import build_routes

    def app_with_router() -> FastAPI:
        router = APIRouter()

        @router.get("/ping")
        def ping() -> dict[str, str]:
            return {"pong": "yes"}

        app = FastAPI()
        app.include_router(router, prefix="/api")
        return app

    outer = app_with_router()
    outer.mount("/t/x", app_with_router())
    build_routes(outer)

    def late(*_args: object) -> None:
        raise AssertionError("a route table was built on a request")

    monkeypatch.setattr(fastapi.routing._IncludedRouter, "_build_effective_context", late)
    with TestClient(outer) as client:
        assert client.get("/api/ping").json() == {"pong": "yes"}
        assert client.get("/t/x/api/ping").json() == {"pong": "yes"}
