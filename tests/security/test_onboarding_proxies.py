"""Who an onboarding applicant is, over real HTTP to a node process: the connection's peer, or
the client a trusted reverse proxy names in ``X-Forwarded-For``, never a name a client gave
itself.

The red team's finding: uvicorn reads ``X-Forwarded-For`` from 127.0.0.1 and ::1 by default, so a
process on a node's host that forged a new address in each application escaped the portal's
per-address cap (and the anonymous-calls limit); and behind a proxy elsewhere every applicant
counted as the proxy. Now the header is read only from ``PRIVLEDGER_TRUSTED_PROXIES`` (none by
default). The node is restarted in between, so this also checks that the origin tags' key
outlives a restart: the applications made before it still count."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from privledger.api.routes.onboarding import MAX_OPEN_PER_ADDRESS
from privledger.demo import NodeProcess, wait_healthy
from privledger.evm.accounts import dev_account
from tests.e2e.conftest import Running
from tests.evm.test_api_text_input import application

pytestmark = pytest.mark.security

ORG = "bank-b"  # any node hosts the portal; the regulator's is the other tests'
PATH = "/api/v1/onboarding/applications"


def _apply(node: NodeProcess, forwarded_for: str | None = None) -> httpx.Response:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return httpx.post(f"{node.url}{PATH}", json=application(), headers=headers, timeout=60)


def _forged() -> str:
    return f"203.0.{secrets.randbelow(256)}.{secrets.randbelow(256)}"


def _reject_all(running: Running, node: NodeProcess, ids: list[str]) -> None:
    """Leave the node's portal as it was: the consortium admin rejects this module's
    applications."""
    home = running.settings.var_dir / "nodes" / ORG
    command = [sys.executable, "-m", "privledger.cli", "node", "token", "--org", ORG]
    command += ["--home", str(home), "--user", "proxies-admin", "--role", "consortium_admin"]
    command += ["--address", dev_account(0).address]
    done = subprocess.run(command, env=node.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    admin = {"Authorization": f"Bearer {done.stdout.strip().splitlines()[-1]}"}
    for application_id in ids:
        answer = httpx.post(
            f"{node.url}{PATH}/{application_id}/reject",
            json={"reason": "test"},
            headers=admin,
            timeout=60,
        )
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def portal(running: Running) -> Iterator[tuple[NodeProcess, list[str]]]:
    """bank-b's node, and the ids of the applications the tests made there (rejected after)."""
    node = running.nodes[ORG]
    as_it_was = node.env
    made: list[str] = []
    try:
        yield node, made
    finally:
        if node.env is not as_it_was:
            node.stop()
            node.env = as_it_was
            node.restart()
            wait_healthy(node)
        _reject_all(running, node, made)


def test_a_forged_forwarded_for_does_not_escape_the_cap_and_a_proxy_names_its_client(
    portal: tuple[NodeProcess, list[str]],
) -> None:
    node, made = portal
    # no trusted proxies (the default): a client on the node's own host names a new address in
    # every application, and is still capped as the connection's peer
    accepted = 0
    while (answer := _apply(node, _forged())).status_code == 201:
        made.append(answer.json()["applicationId"])
        accepted += 1
        assert accepted <= MAX_OPEN_PER_ADDRESS, "a forged X-Forwarded-For escaped the cap"
    assert answer.status_code == 429, answer.text
    assert accepted == MAX_OPEN_PER_ADDRESS

    # the node restarted behind a proxy on its host (127.0.0.1, trusted)
    node.stop()
    node.env = {**node.env, "PRIVLEDGER_TRUSTED_PROXIES": json.dumps(["127.0.0.1"])}
    node.restart()
    wait_healthy(node)
    # the proxy's own calls are still its address's, whose applications from before the
    # restart still count: the tags' key is the same
    assert _apply(node).status_code == 429
    # the client the proxy names is counted, not the proxy; a client that put an address of
    # its own in front of what the proxy appended is still the proxy's client
    client = f"198.51.100.{secrets.randbelow(256)}"
    for _ in range(MAX_OPEN_PER_ADDRESS):
        answer = _apply(node, client)
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["applicationId"])
    assert _apply(node, client).status_code == 429
    assert _apply(node, f"{_forged()}, {client}").status_code == 429
    fresh = _apply(node, f"{client}, 192.0.2.{secrets.randbelow(256)}")
    assert fresh.status_code == 201, fresh.text
    made.append(fresh.json()["applicationId"])
