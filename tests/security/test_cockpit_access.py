"""A node's operations cockpit is its own organisation's, and its health probe is no scanner.

Before: an account with the operator role in *any* organisation logged into *every* node's
cockpit, and the cockpit's health probe sent ``GET {endpoint}/api/v1/health`` to whatever
endpoint an organisation registered on chain and showed the outcome -- ``HTTP 404`` for a
listening port, ``ConnectError`` for a closed one: with ``?`` in the endpoint the path was
mallory's, a blind SSRF and port scan of the probing node's network. Now another member's
operator is refused (403), an endpoint that is not ``http(s)://host[:port][/path]`` is no
endpoint (nothing is sent to it), and the probe reports up or down only.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from privledger.evm.accounts import dev_account
from privledger.explorer.cockpit import HEALTH_TTL_S
from tests.e2e.test_explorer import login

from .malicious import MALLORY_ACCOUNT, Mallory

pytestmark = pytest.mark.security

BANK_A_OPERATOR = 1  # bank-a's admin, an operator of bank-a


class Recorder:
    """A stand-in internal service on the node's host: records the request lines it gets."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                request = connection.recv(65536).decode(errors="replace")
                self.lines.append(request.splitlines()[0] if request else "")
                connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def _health(client: httpx.Client, org_id: int) -> dict[str, object]:
    response = client.get("/explorer/api/cockpit")
    assert response.status_code == 200, response.text
    (found,) = [h for h in response.json()["health"] if h["org_id"] == org_id]
    return dict(found)


def test_another_members_operator_is_refused_the_cockpit(mallory: Mallory) -> None:
    with httpx.Client(base_url=mallory.running.nodes["bank-a"].url, timeout=30) as client:
        refused = login(client, dev_account(MALLORY_ACCOUNT))  # mallory's operator, not bank-a's
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        assert client.get("/explorer/api/cockpit").status_code == 401  # no session was opened


def test_a_registered_endpoint_cannot_scan_the_probing_nodes_network(mallory: Mallory) -> None:
    orgs = mallory.ledger.orgs
    before = orgs.get_org(mallory.org_id)
    recorder = Recorder()
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # a port nobody listens on
    endpoints = {
        "query": f"http://127.0.0.1:{recorder.port}/internal/admin?x=",
        "listening": f"http://127.0.0.1:{recorder.port}/internal",
        "closed": f"http://127.0.0.1:{closed_port}/internal",
    }
    seen = {}
    try:
        with httpx.Client(base_url=mallory.running.nodes["bank-a"].url, timeout=30) as client:
            assert login(client, dev_account(BANK_A_OPERATOR)).status_code == 200
            for name, endpoint in endpoints.items():
                orgs.update_node(mallory.org_id, endpoint, before.node_key)
                time.sleep(HEALTH_TTL_S + 1)  # the cockpit's health cache
                seen[name] = _health(client, mallory.org_id)
    finally:
        orgs.update_node(mallory.org_id, before.endpoint, before.node_key)
        recorder.listener.close()
    # an endpoint with a query is no endpoint: bank-a's node sent nothing to it
    assert not any("?" in line for line in recorder.lines), recorder.lines
    assert seen["query"]["up"] is False and seen["query"]["endpoint"] == "", seen
    # a listening port that is no node and a closed port look the same: down, nothing more
    assert seen["listening"] == {**seen["closed"], "endpoint": endpoints["listening"]}, seen
    assert seen["closed"]["up"] is False and seen["closed"]["latency_ms"] is None, seen
    assert "404" not in str(seen) and "Error" not in str(seen), seen
