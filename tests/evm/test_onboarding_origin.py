"""What an onboarding application id gives away, and how long an application holds its place.

The red team's findings: an application id opened with two unkeyed SHA-256 tags of the
applicant's address and network, so anyone shown an id (the applicant, the operator) recovered
an IPv4 address by hashing candidates; and applications nobody reviewed stayed open for ever, so
the portal's 1,000 filled for good."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import stat
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from privledger.api.routes.onboarding import (
    MAX_OPEN_PER_ADDRESS,
    ORIGIN_KEY_FILE,
    issue_consortium_admin_token,
    origin_key,
)
from privledger.evm.accounts import dev_account
from privledger.node.context import NodeContext
from privledger.store.models import OnboardingApplication

from .test_api_text_input import application

URL = "/api/v1/onboarding/applications"


def _from(api: tuple[TestClient, NodeContext], host: str) -> TestClient:
    return TestClient(api[0].app, raise_server_exceptions=False, client=(host, 50_000))


def _unkeyed_tag(address: str) -> str:
    """The address tag as the portal computed it before it was keyed: anybody could."""
    return hashlib.sha256(f"onboarding address {address}".encode()).hexdigest()[:6]


@pytest.mark.privacy
def test_an_application_id_does_not_give_away_the_applicants_address(
    telecom_api: tuple[TestClient, NodeContext],
) -> None:
    network = f"10.{secrets.randbelow(256)}"
    host = f"{network}.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    created = _from(telecom_api, host).post(URL, json=application())
    assert created.status_code == 201, created.text
    shown = created.json()["applicationId"]
    # the attacker knows the applicant's /16 and hashes every address in it
    candidates = ipaddress.ip_network(f"{network}.0.0/16")
    recovered = [str(ip) for ip in candidates if _unkeyed_tag(str(ip)) == shown[:6]]
    assert host not in recovered
    # nor does a tag of the address's own (the key is the node's, in its keystore)
    assert not shown.startswith(_unkeyed_tag(host))


def test_the_tag_key_is_the_nodes_private_file_and_lasts(
    telecom_api: tuple[TestClient, NodeContext],
) -> None:
    _, node = telecom_api
    key = origin_key(node.settings.keystore_dir)
    path = node.settings.keystore_dir / ORIGIN_KEY_FILE
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert origin_key(node.settings.keystore_dir) == key  # read again, as after a restart


@pytest.mark.security
def test_unreviewed_applications_expire_and_stop_counting(
    telecom_api: tuple[TestClient, NodeContext],
) -> None:
    _, node = telecom_api
    client = _from(telecom_api, f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.7")
    created = [client.post(URL, json=application()) for _ in range(MAX_OPEN_PER_ADDRESS)]
    assert [answer.status_code for answer in created] == [201] * MAX_OPEN_PER_ADDRESS
    assert client.post(URL, json=application()).status_code == 429
    with Session(node.engine) as session:
        admin = issue_consortium_admin_token(
            session, user_name="consortium", address=dev_account(0).address
        )
    reviewer = {"Authorization": f"Bearer {admin}"}
    first = created[0].json()["applicationId"]
    assert client.post(f"{URL}/{first}/review", headers=reviewer).status_code == 200

    # a year later, nobody having decided them
    with Session(node.engine) as session:
        for row in session.exec(select(OnboardingApplication)):
            row.submitted_at = row.submitted_at - timedelta(days=365)
            session.add(row)
        session.commit()

    again = client.post(URL, json=application())
    assert again.status_code == 201, again.text
    with Session(node.engine) as session:  # kept so: the next application does not read them
        stored = {row.id: row.status for row in session.exec(select(OnboardingApplication))}
    assert {stored[answer.json()["applicationId"]] for answer in created} == {"expired"}
    for answer in created[:2]:
        secret = {"X-Tracking-Secret": answer.json()["trackingSecret"]}
        tracked = client.get(f"{URL}/{answer.json()['applicationId']}", headers=secret)
        assert tracked.status_code == 200, tracked.text
        assert tracked.json()["status"] == "expired"
    expired = client.get(URL, params={"status": "expired"}, headers=reviewer)
    assert expired.status_code == 200, expired.text
    assert {row["applicationId"] for row in expired.json()} >= {
        answer.json()["applicationId"] for answer in created
    }
    submitted = client.get(URL, params={"status": "submitted"}, headers=reviewer).json()
    assert [row["applicationId"] for row in submitted] == [again.json()["applicationId"]]
    refused = client.post(f"{URL}/{first}/reject", json={"reason": "late"}, headers=reviewer)
    assert refused.status_code == 409, refused.text
    assert "expired" in refused.json()["error"]["message"]
