"""The auditor explorer on a real node: challenge login by an on-chain auditor, the task list, a
settled task's whole story, and verifying a result file against its anchored digest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from privledger.evm.accounts import dev_account
from privledger.evm.contracts import Role
from privledger.explorer.auth import CHALLENGE_TTL_S, AuthFailure, ExplorerAuth

from .conftest import Running
from .test_walking_path import FEE, grant, submit, wait_status

NODE = "telecom"  # the explorer of any node shows the whole ledger
EXPLORER_PAGES = [
    "/explorer",
    "/explorer/tasks",
    "/explorer/tasks/1",
    "/explorer/verify",
    "/explorer/blocks",
    "/explorer/blocks/1",
    "/explorer/txs",
    "/explorer/accounts",
    "/explorer/orgs",
    "/explorer/orgs/1",
    "/explorer/datasets",
    "/explorer/settlements",
    "/explorer/batches",
    "/explorer/search?q=1",
    "/explorer/provenance",
]
EXPLORER_API = [
    "/explorer/api/tasks",
    "/explorer/api/tasks/1",
    "/explorer/api/blocks",
    "/explorer/api/txs",
    "/explorer/api/datasets",
    "/explorer/api/search?q=1",
    "/explorer/api/provenance",
]
REGULATOR = 4  # dev account of the demo's regulator, an auditor of its own org
NODE_ADMIN = 3  # dev account of telecom's admin, an operator of the node's organisation


def explorer(running: Running) -> httpx.Client:
    return httpx.Client(base_url=running.nodes[NODE].url, timeout=60)


def sign(account: LocalAccount, text: str) -> str:
    signed = account.sign_message(encode_defunct(text=text))
    return "0x" + bytes(signed.signature).hex()


def challenge(client: httpx.Client) -> str:
    response = client.post("/explorer/api/challenge")
    assert response.status_code == 200, response.text
    text: str = response.json()["challenge"]
    return text


def login(client: httpx.Client, account: LocalAccount) -> httpx.Response:
    text = challenge(client)
    body = {"challenge": text, "address": account.address, "signature": sign(account, text)}
    return client.post("/explorer/api/login", json=body)


@pytest.fixture
def auditor(running: Running) -> Iterator[httpx.Client]:
    with explorer(running) as client:
        response = login(client, dev_account(REGULATOR))
        assert response.status_code == 200, response.text
        yield client


@pytest.fixture(scope="module")
def settled(running: Running) -> dict[str, Any]:
    """A PSI task run from submission to settlement, and its result as the requester got it."""
    mine = running.register("telecom")
    theirs = running.register("bank-a")
    issued = grant(running, "bank-a", theirs, "telecom")
    task = submit(running, mine, theirs)
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task["taskId"], {"settled", "failed"})
        assert final["status"] == "settled", final
        result = client.get(f"/tasks/{task['taskId']}/result").json()
    return {"task": final, "result": result, "grant": issued}


# --- login ------------------------------------------------------------------------------------
def test_auditor_of_another_org_logs_in_with_a_signed_challenge(running: Running) -> None:
    regulator = dev_account(REGULATOR)
    with explorer(running) as client:
        response = login(client, regulator)
        assert response.status_code == 200, response.text
        assert response.json()["address"] == regulator.address
        assert response.json()["orgId"] == running.org_ids["regulator"] != running.org_ids[NODE]
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/explorer" in cookie
        page = client.get("/explorer/tasks")
        assert page.status_code == 200
        assert regulator.address[:10] in page.text and "telecom" in page.text
        # logging out ends the session on the server
        assert client.post("/explorer/logout").status_code == 303
        assert client.get("/explorer/api/tasks").status_code == 401


def test_login_form_sets_the_session(running: Running) -> None:
    regulator = dev_account(REGULATOR)
    with explorer(running) as client:
        page = client.get("/explorer/login")
        assert page.status_code == 200 and "personal_sign" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        text = challenge(client)
        assert text.startswith("privledger explorer login: node telecom")
        form = {"challenge": text, "address": regulator.address, "signature": sign(regulator, text)}
        response = client.post("/explorer/login", data=form)
        assert response.status_code == 303 and response.headers["location"] == "/explorer/tasks"
        assert client.get("/explorer/tasks").status_code == 200
        # a refused form login shows the page again with the reason and a fresh challenge
        again = client.post("/explorer/login", data=form)
        assert again.status_code == 401 and "already used" in again.text
        assert text not in again.text


def test_non_auditors_are_refused_with_403(running: Running) -> None:
    with explorer(running) as client:
        stranger = login(client, dev_account(9))  # in no organisation at all
        assert stranger.status_code == 403, stranger.text
        assert stranger.json()["error"]["code"] == "forbidden"
        assert client.get("/explorer/api/tasks").status_code == 401  # no session was opened
    with explorer(running) as client:
        # another organisation's operator (bank-a's admin) may not open this node's cockpit
        other = login(client, dev_account(1))
        assert other.status_code == 403, other.text
        assert f"no operator role in organisation {running.org_ids[NODE]}" in other.text
    with explorer(running) as client:
        # an operator of the node's own organisation (telecom's admin) may open the cockpit, and
        # nothing of the explorer
        operator = login(client, dev_account(NODE_ADMIN))
        assert operator.status_code == 200, operator.text
        assert "operator" in operator.json()["roles"] and "auditor" not in operator.json()["roles"]
        for path in EXPLORER_PAGES:
            refused = client.get(path)
            assert refused.status_code == 403, path
            assert "auditor role" in refused.text
        for path in EXPLORER_API:
            refused = client.get(path)
            assert refused.status_code == 403, path
            assert refused.json()["error"]["code"] == "forbidden"
        assert client.get("/explorer/cockpit").status_code == 200
        assert client.get("/explorer/api/cockpit").status_code == 200
    with explorer(running) as client:
        # the consortium admin (no role in any organisation) watches any node's cockpit
        admin = login(client, dev_account(0))
        assert admin.status_code == 200, admin.text
        assert admin.json()["consortiumAdmin"] is True and admin.json()["roles"] == []
        assert client.get("/explorer/api/cockpit").status_code == 200
        assert "consortium admin" in client.get("/explorer/cockpit").text
        assert client.get("/explorer/api/tasks").status_code == 403


def test_wrong_reused_or_forged_challenges_are_refused(running: Running) -> None:
    regulator = dev_account(REGULATOR)
    with explorer(running) as client:

        def attempt(text: str, address: str, signature: str) -> httpx.Response:
            body = {"challenge": text, "address": address, "signature": signature}
            return client.post("/explorer/api/login", json=body)

        # a challenge this node never issued
        made_up = "privledger explorer login: node telecom (org 3), nonce 00"
        refused = attempt(made_up, regulator.address, sign(regulator, made_up))
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_challenge"
        # used once, then never again
        text = challenge(client)
        assert attempt(text, regulator.address, sign(regulator, text)).status_code == 200
        reused = attempt(text, regulator.address, sign(regulator, text))
        assert reused.status_code == 401 and "already used" in reused.json()["error"]["message"]
        # signed by someone else than the claimed auditor
        text = challenge(client)
        forged = attempt(text, regulator.address, sign(dev_account(1), text))
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "invalid_signature"
        # a signature over other text; garbage; a malformed address
        text = challenge(client)
        assert attempt(text, regulator.address, sign(regulator, text + "x")).status_code == 401
        text = challenge(client)
        assert attempt(text, regulator.address, "0x1234").status_code == 401
        text = challenge(client)
        assert attempt(text, "not-an-address", sign(regulator, text)).status_code == 401
        assert client.post("/explorer/api/login", json={"challenge": "x"}).status_code == 422


def test_expired_challenge_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import privledger.explorer.auth as auth_module

    auth = ExplorerAuth()
    text, _ = auth.new_challenge("telecom", 3, 31337, "127.0.0.1")
    now = auth_module.time.monotonic()
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now + CHALLENGE_TTL_S + 1)
    regulator = dev_account(REGULATOR)
    with pytest.raises(AuthFailure) as refused:
        auth.login(None, text, regulator.address, sign(regulator, text))  # type: ignore[arg-type]
    assert refused.value.status == 401 and "expired" in refused.value.message
    # and it is gone: a second try is an unknown challenge
    with pytest.raises(AuthFailure, match="unknown or already used"):
        auth.take_challenge(text)


def test_no_session_is_401_or_a_redirect_to_login(running: Running) -> None:
    pages = [*EXPLORER_PAGES, "/explorer/cockpit"]
    api = [*EXPLORER_API, "/explorer/api/cockpit"]
    for cookies in ({}, {"pl_explorer": "forged-session-id"}):
        with httpx.Client(base_url=running.nodes[NODE].url, cookies=cookies) as client:
            for path in pages:
                response = client.get(path)
                assert response.status_code == 303, path
                assert response.headers["location"] == "/explorer/login"
            for path in api:
                response = client.get(path)
                assert response.status_code == 401, path
                assert response.json()["error"]["code"] == "unauthorized"
            files = {"result_file": ("r.json", b"[]", "application/json")}
            form = {"task_id": "1", "org_id": "1", "salt": "0x" + "00" * 32}
            assert client.post("/explorer/verify", data=form, files=files).status_code == 303
            blocked = client.post("/explorer/api/verify", data=form, files=files)
            assert blocked.status_code == 401
    # public: the login page, the challenge and the stylesheet
    with explorer(running) as client:
        css = client.get("/explorer/static/explorer.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert client.get("/explorer/static/../auth.py").status_code == 404


def test_an_auditor_who_loses_the_role_is_refused_with_403(
    running: Running, auditor: httpx.Client
) -> None:
    admin = running.ledger(0)  # the consortium admin grants and revokes the auditor role
    regulator = dev_account(REGULATOR).address
    org = running.org_ids["regulator"]
    admin.orgs.revoke_roles(org, regulator, Role.AUDITOR)
    try:
        refused = auditor.get("/explorer/api/tasks")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        page = auditor.get("/explorer/tasks")
        assert page.status_code == 403 and "auditor role" in page.text
    finally:
        admin.orgs.grant_roles(org, regulator, Role.AUDITOR)
    assert auditor.get("/explorer/api/tasks").status_code == 200


# --- tasks ------------------------------------------------------------------------------------
def test_task_list_and_the_whole_story_of_a_settled_task(
    running: Running, auditor: httpx.Client, settled: dict[str, Any]
) -> None:
    task_id = settled["task"]["taskId"]
    telecom, bank = running.org_ids["telecom"], running.org_ids["bank-a"]

    listing = auditor.get("/explorer/api/tasks").json()
    assert listing["tasks"][0]["task_id"] >= task_id  # newest first
    row = next(r for r in listing["tasks"] if r["task_id"] == task_id)
    assert row["status"] == "settled" and row["requester_name"] == "telecom"
    page = auditor.get("/explorer/tasks")
    assert f'href="/explorer/tasks/{task_id}"' in page.text and "badge settled" in page.text
    found = auditor.get("/explorer/tasks", params={"task": str(task_id)})
    assert found.status_code == 303 and found.headers["location"] == f"/explorer/tasks/{task_id}"
    assert auditor.get("/explorer/tasks", params={"task": "x<b>"}).status_code == 400

    story = auditor.get(f"/explorer/api/tasks/{task_id}").json()
    assert story["status"] == "settled" and story["fee"] == FEE
    names = [e["event"] for e in story["events"]]
    for expected in (
        "TaskSubmitted",
        "GrantConsumed",
        "TaskAuthorised",
        "ResultAnchored",
        "TaskCompleted",
        "UsageRecorded",
        "TaskSettled",
        "FeeAllocated",
    ):
        assert expected in names, (expected, names)
    blocks = [(e["block_number"], e["log_index"]) for e in story["events"]]
    assert blocks == sorted(blocks)
    assert [g["grant_id"] for g in story["grants"]] == [settled["grant"]["grantId"]]
    assert story["grants"][0]["state"] == "active" and story["grants"][0]["used_by_task"] >= 1
    assert story["grants"][0]["terms"] == settled["grant"]["terms"]  # the terms it ran under
    assert [i["authorised_by"] for i in story["inputs"]] == ["own data", "grant"]
    anchors = {a["org_id"]: a for a in story["anchors"]}
    assert anchors[telecom]["result_digest"] == settled["result"]["resultDigest"]
    assert all(a["anchored"] and a["on_chain"] for a in anchors.values())
    assert story["transcripts_agree"] is True
    provenance_hash, _ = running.ledger(0).tasks.settlement_of(task_id)
    assert story["settlement"]["provenance_hash"] == "0x" + provenance_hash.hex()
    allocations = story["settlement"]["allocations"]
    assert allocations == [{"org_id": bank, "org_name": "bank-a", "amount": FEE}]
    assert story["failure_reason"] is None

    html = auditor.get(f"/explorer/tasks/{task_id}")
    assert html.status_code == 200
    for text in (
        settled["result"]["resultDigest"],
        "0x" + provenance_hash.hex(),
        settled["grant"]["grantId"][:10],
        "GrantConsumed",
        "verifyAnchor ✓",
        "transcripts agree",
        "Terms the task ran under",
    ):
        assert text in html.text, text


def test_unknown_task_is_404(auditor: httpx.Client) -> None:
    for path in ("/explorer/tasks/999999", "/explorer/tasks/abc", "/explorer/tasks/0"):
        response = auditor.get(path)
        assert response.status_code == 404 and "Not found" in response.text, path
    missing = auditor.get("/explorer/api/tasks/999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


# --- verify -----------------------------------------------------------------------------------
def verify(
    client: httpx.Client, task_id: int, org: int, salt: str, content: bytes, *, page: bool = False
) -> httpx.Response:
    form = {"task_id": str(task_id), "org_id": str(org), "salt": salt}
    files = {"result_file": ("result.json", content, "application/json")}
    path = "/explorer/verify" if page else "/explorer/api/verify"
    return client.post(path, data=form, files=files)


def test_verify_a_result_against_its_anchored_digest(
    running: Running, auditor: httpx.Client, settled: dict[str, Any]
) -> None:
    task_id, result = settled["task"]["taskId"], settled["result"]
    telecom, bank = running.org_ids["telecom"], running.org_ids["bank-a"]
    items = json.dumps(result["items"]).encode()

    good = verify(auditor, task_id, telecom, result["salt"], items).json()
    assert good["verified"] is True and good["reasons"] == []
    assert good["computed_digest"] == good["anchored_digest"] == result["resultDigest"]
    # the whole result object, its salt used when none is typed
    whole = verify(auditor, task_id, telecom, "", json.dumps(result).encode()).json()
    assert whole["verified"] is True
    # the items in the file's order: the digest is over the file
    shuffled = json.dumps(list(reversed(result["items"]))).encode()
    assert not verify(auditor, task_id, telecom, result["salt"], shuffled).json()["verified"]

    tampered = json.dumps([*result["items"][:-1], "+440000000000"]).encode()
    bad = verify(auditor, task_id, telecom, result["salt"], tampered).json()
    assert bad["verified"] is False and "differs from the anchored digest" in bad["reasons"][0]
    wrong_salt = "0x" + "11" * 32
    assert verify(auditor, task_id, telecom, wrong_salt, items).json()["verified"] is False
    # the provider learned no output: its anchored digest is over an empty output
    assert verify(auditor, task_id, bank, result["salt"], items).json()["verified"] is False

    page = verify(auditor, task_id, telecom, result["salt"], items, page=True)
    assert page.status_code == 200 and "<strong>Verified</strong>" in page.text
    page = verify(auditor, task_id, telecom, result["salt"], tampered, page=True)
    assert page.status_code == 200 and "NOT verified" in page.text
    assert auditor.get(f"/explorer/verify?task={task_id}").status_code == 200


def test_verify_bad_input_is_a_clear_4xx(
    running: Running, auditor: httpx.Client, settled: dict[str, Any]
) -> None:
    task_id, result = settled["task"]["taskId"], settled["result"]
    telecom = running.org_ids["telecom"]
    items = json.dumps(result["items"]).encode()
    cases = [
        (task_id, telecom, result["salt"], b"not json {", 400, "invalid_file"),
        (task_id, telecom, result["salt"], b'{"items": [1, 2]}', 400, "invalid_file"),
        (task_id, telecom, "0x1234", items, 400, "invalid_salt"),
        (task_id, telecom, "zz" * 32, items, 400, "invalid_salt"),
        (999_999, telecom, result["salt"], items, 404, "not_found"),
        (task_id, 999, result["salt"], items, 400, "not_a_participant"),
    ]
    for task, org, salt, content, status, code in cases:
        response = verify(auditor, task, org, salt, content)
        assert response.status_code == status, (code, response.text)
        assert response.json()["error"]["code"] == code
        page = verify(auditor, task, org, salt, content, page=True)
        assert page.status_code == status and 'class="alert bad"' in page.text
    no_file = auditor.post("/explorer/api/verify", data={"task_id": "1", "org_id": "1"})
    assert no_file.status_code == 400
    form = {"task_id": str(task_id), "org_id": str(telecom), "salt": result["salt"]}
    bad_hash = auditor.post("/explorer/api/verify", data={**form, "result_sha256": "0x12"})
    assert bad_hash.status_code == 400 and bad_hash.json()["error"]["code"] == "invalid_sha256"
    not_a_number = verify(auditor, "x", telecom, result["salt"], items)  # type: ignore[arg-type]
    assert not_a_number.status_code == 400


def test_a_rejected_task_shows_its_approvals_and_failure_reason(
    running: Running, auditor: httpx.Client
) -> None:
    mine = running.register("telecom")
    theirs = running.register("bank-b")  # no grant: the owner is asked
    task = submit(running, mine, theirs)
    assert task["status"] == "submitted"
    with running.client("bank-b", "data_owner") as owner:
        decided = owner.post(f"/approvals/{task['taskId']}/{theirs}", json={"decision": "reject"})
        assert decided.status_code == 200, decided.text
    story = auditor.get(f"/explorer/api/tasks/{task['taskId']}").json()
    assert story["status"] == "failed" and story["failure_reason"] == "rejected"
    assert [a["event"] for a in story["approvals"]] == ["ApprovalRequested", "InputRejected"]
    assert story["inputs"][1]["authorised_by"] == "rejected" and story["grants"] == []
    assert not any(a["anchored"] for a in story["anchors"])
    assert story["settlement"]["settled"] is False
    page = auditor.get(f"/explorer/tasks/{task['taskId']}")
    assert page.status_code == 200
    assert "Failed: <strong>rejected</strong>" in page.text and "InputRejected" in page.text
    assert "not anchored" in page.text
