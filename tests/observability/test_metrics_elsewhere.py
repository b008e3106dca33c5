"""In a node of several API processes only the primary holds the worker's metrics: the others
refuse a scrape with the endpoint that answers it, as they refuse peer frames."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from privledger.api.server import PeerFramesElsewhere
from privledger.node.metrics import METRICS_PATH

ENDPOINT = "http://10.0.0.7:9001"


def test_an_api_process_sends_scrapes_to_the_primary() -> None:
    app = Starlette(routes=[Route("/api/v1/health", lambda _: PlainTextResponse("ok"))])
    with TestClient(PeerFramesElsewhere(app, ENDPOINT)) as client:
        refused = client.get(METRICS_PATH, headers={"Authorization": "Bearer pl_x"})
        assert refused.status_code == 421
        error = refused.json()["error"]
        assert error["code"] == "misdirected" and ENDPOINT in error["message"]
        assert client.get("/api/v1/health").text == "ok"  # the rest is served here
