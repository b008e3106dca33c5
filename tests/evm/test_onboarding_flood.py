"""The onboarding portal's caps on open applications, per client address and per network.

The attack: one client without credentials, within the anonymous-calls limit, filed 1,000
made-up applications in 94 s; every genuine organisation's application was then refused with
429 ``too_many_applications`` until the consortium admin rejected them all."""

from __future__ import annotations

import secrets

import pytest
from fastapi.testclient import TestClient

from privledger.api.routes import onboarding
from privledger.api.routes.onboarding import (
    MAX_OPEN_PER_ADDRESS,
    MAX_OPEN_PER_NETWORK,
    origin_key,
    origin_tags,
)
from privledger.node.context import NodeContext

from .test_api_text_input import application

pytestmark = pytest.mark.security

URL = "/api/v1/onboarding/applications"


def _from(api: tuple[TestClient, NodeContext], host: str) -> TestClient:
    return TestClient(api[0].app, raise_server_exceptions=False, client=(host, 50_000))


def _flood(client: TestClient) -> int:
    """Applications accepted from ``client`` before it is refused."""
    accepted = 0
    while (answer := client.post(URL, json=application())).status_code == 201:
        accepted += 1
        assert accepted <= MAX_OPEN_PER_NETWORK, "no cap stopped the flood"
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "too_many_applications"
    return accepted


def test_a_flooder_fills_only_its_own_share_of_the_portal(
    telecom_api: tuple[TestClient, NodeContext],
) -> None:
    network = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    assert _flood(_from(telecom_api, f"{network}.7")) == MAX_OPEN_PER_ADDRESS
    host = f"192.0.2.{secrets.randbelow(256)}"
    genuine = _from(telecom_api, host).post(URL, json=application())
    assert genuine.status_code == 201, genuine.text
    key = origin_key(telecom_api[1].settings.keystore_dir)
    assert genuine.json()["applicationId"][:12] == "".join(origin_tags(host, key))


def test_a_network_is_capped_as_well(
    telecom_api: tuple[TestClient, NodeContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onboarding, "MAX_OPEN_PER_NETWORK", 2 * MAX_OPEN_PER_ADDRESS + 3)
    network = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    shares = [_flood(_from(telecom_api, f"{network}.{host}")) for host in (1, 2, 3)]
    assert shares == [MAX_OPEN_PER_ADDRESS, MAX_OPEN_PER_ADDRESS, 3]
    assert _from(telecom_api, "192.0.2.1").post(URL, json=application()).status_code == 201


def test_the_address_is_an_ipv6_slash_64_and_the_network_a_slash_48() -> None:
    key = secrets.token_bytes(32)
    one, same_64, same_48 = "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1"
    assert origin_tags(one, key) == origin_tags(same_64, key)
    assert origin_tags(one, key)[0] != origin_tags(same_48, key)[0]
    assert origin_tags(one, key)[1] == origin_tags(same_48, key)[1]
    assert origin_tags("::ffff:192.0.2.7", key) == origin_tags("192.0.2.7", key)
    assert origin_tags("192.0.2.7", key)[1] == origin_tags("192.0.2.200", key)[1]
