"""The walking path with real node processes: a PSI task from submission to settlement."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx

from privledger.evm.contracts import FailureReason, Kind, TaskStatus
from privledger.node import results
from privledger.node.spec import PROTOCOL_IDS
from privledger.node.terms import default_terms
from privledger.node.transport import STREAM_LENGTH
from privledger.node.worker import result_digest

from .conftest import Running, post_frames

FEE = 10**16


def wait_status(
    client: httpx.Client, task_id: int, states: set[str], timeout_s: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task: dict[str, Any] = client.get(f"/tasks/{task_id}").json()
        if task["status"] in states or time.monotonic() > deadline:
            return task
        time.sleep(0.3)


def grant(
    running: Running, owner: str, dataset: str, grantee: str, **overrides: Any
) -> dict[str, Any]:
    body = {
        "dataset": dataset,
        "granteeOrg": running.org_ids[grantee],
        "kinds": ["psi"],
        "expiresInS": 3_600,
        "maxUses": 5,
        **overrides,
    }
    with running.client(owner, "data_owner") as client:
        response = client.post("/grants", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


def fee_allocations(final: dict[str, Any]) -> dict[int, int]:
    """Payee org -> amount, from a settled task's timeline."""
    return {
        e["args"]["payeeOrg"]: e["args"]["amount"]
        for e in final["timeline"]
        if e["event"] == "FeeAllocated"
    }


def submit(
    running: Running, mine: str, theirs: str, *, output: str = "requester", protocol: str = "ecdh"
) -> dict[str, Any]:
    body = {
        "inputs": [{"dataset": mine, "column": "phone"}, {"dataset": theirs, "column": "phone"}],
        "feeWei": FEE,
        "output": output,
        "protocol": protocol,
    }
    with running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


def test_psi_task_is_authorised_run_anchored_and_settled(running: Running) -> None:
    telecom_data = running.register("telecom")
    bank_data = running.register("bank-a", price=10**12)
    issued = grant(running, "bank-a", bank_data, "telecom")
    task = submit(running, telecom_data, bank_data)
    assert task["status"] == "authorised"
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task["taskId"], {"settled", "failed"})
        assert final["status"] == "settled", final
        result = client.get(f"/tasks/{task['taskId']}/result").json()

    expected = running.people["telecom"] & running.people["bank-a"]
    assert set(result["items"]) == expected and len(expected) == 321

    # the digest anchored on chain opens with the result file and its salt
    ledger = running.ledger(0)
    telecom_org, bank_org = running.org_ids["telecom"], running.org_ids["bank-a"]
    digest = result_digest(
        task["taskId"],
        telecom_org,
        bytes.fromhex(result["salt"][2:]),
        results.encode(result["items"]),
    )
    assert "0x" + digest.hex() == result["resultDigest"]
    anchors = {a.org_id: a for a in ledger.tasks.anchors(task["taskId"])}
    assert anchors[telecom_org].result_digest == digest
    # both ends saw the same messages
    assert anchors[telecom_org].transcript_hash == anchors[bank_org].transcript_hash
    # the grant was used once, the whole fee went to the bank by provenance
    assert ledger.grants.get_grant(bytes.fromhex(issued["grantId"][2:])).used == 1
    allocated = [e["args"] for e in final["timeline"] if e["event"] == "FeeAllocated"]
    assert allocated == [{"taskId": task["taskId"], "payeeOrg": bank_org, "amount": FEE}]
    provenance_hash, settled = ledger.tasks.settlement_of(task["taskId"])
    assert settled
    # whichever participant settled first (the requester or the provider) kept the record
    records = [
        path.read_bytes()
        for org in ("telecom", "bank-a")
        if (
            path := running.settings.var_dir
            / "nodes"
            / org
            / "results"
            / f"task-{task['taskId']}-provenance.json"
        ).is_file()
    ]
    from Crypto.Hash import keccak

    (record,) = (
        r for r in records if keccak.new(digest_bits=256, data=r).digest() == provenance_hash
    )
    assert json.loads(record)["bps"] == [10_000]
    # the provider learned no output, so it has nothing to hand out
    with running.client("bank-a", "operator") as client:
        assert client.get(f"/tasks/{task['taskId']}/result").status_code == 404


def test_task_without_usable_grant_waits_for_the_owner(running: Running) -> None:
    telecom_data = running.register("telecom")
    bank_data = running.register("bank-b")
    revoked = grant(running, "bank-b", bank_data, "telecom")
    with running.client("bank-b", "data_owner") as owner:
        assert owner.delete(f"/grants/{revoked['grantId']}").json()["revoked"] is True
    task = submit(running, telecom_data, bank_data, output="both")
    assert task["status"] == "submitted"  # the revoked grant was not usable: approval requested
    time.sleep(2)
    with running.client("telecom", "operator") as client:
        waiting = client.get(f"/tasks/{task['taskId']}").json()
    assert waiting["status"] == "submitted"
    assert not [e for e in waiting["timeline"] if e["event"] == "ResultAnchored"]

    with running.client("bank-b", "data_owner") as owner:
        pending = [a for a in owner.get("/approvals").json() if a["taskId"] == task["taskId"]]
        assert pending and pending[0]["status"] == "pending"
        assert (pending[0]["protocol"], pending[0]["feeWei"]) == ("ecdh", FEE)  # the request
        decided = owner.post(
            f"/approvals/{task['taskId']}/{bank_data}", json={"decision": "approve"}
        )
        assert decided.status_code == 200, decided.text
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task["taskId"], {"settled", "failed"})
    assert final["status"] == "settled", final
    expected = running.people["telecom"] & running.people["bank-b"]
    with running.client("bank-b", "operator") as client:  # output to both
        assert set(client.get(f"/tasks/{task['taskId']}/result").json()["items"]) == expected


def test_spec_that_does_not_match_its_hash_is_refused(running: Running) -> None:
    telecom_data = running.register("telecom")
    bank_data = running.register("bank-a")
    issued = grant(running, "bank-a", bank_data, "telecom")
    telecom = running.ledger(3)  # the telecom's own account, bypassing its node's API
    task_id = telecom.tasks.submit_task(
        spec_hash=secrets.token_bytes(32),
        kind=Kind.PSI,
        protocol=PROTOCOL_IDS["ecdh"],
        inputs=[bytes.fromhex(telecom_data[2:]), bytes.fromhex(bank_data[2:])],
        grant_ids=[bytes(32), bytes.fromhex(issued["grantId"][2:])],
        participants=[running.org_ids["telecom"], running.org_ids["bank-a"]],
        deadline=int(running.w3.eth.get_block("latest")["timestamp"]) + 600,
        fee=FEE,
    )
    deadline = time.monotonic() + 60
    while (
        telecom.tasks.get_task(task_id).status is not TaskStatus.FAILED
        and time.monotonic() < deadline
    ):
        time.sleep(0.3)
    failed = telecom.tasks.get_task(task_id)
    assert failed.status is TaskStatus.FAILED
    assert failed.failure_reason == FailureReason.SPEC_MISMATCH
    assert not telecom.tasks.anchors(task_id)
    assert telecom.metering.balance_of(running.org_ids["telecom"]) >= FEE  # refunded


def test_bad_input_gets_clear_4xx(running: Running) -> None:
    with running.client("telecom", "operator") as client:
        assert client.get("/tasks/999999").status_code == 404
        response = client.post("/tasks", json={"inputs": "nope"})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_request"
        assert (
            client.post(
                "/datasets", json={"path": "/x", "name": "n", "level": 1, "unitPrice": 0}
            ).status_code
            == 403
        )
    with running.client("telecom", "data_owner") as owner:
        missing = owner.post(
            "/datasets", json={"path": "/no/such.csv", "name": "x", "level": 1, "unitPrice": 0}
        )
        assert missing.status_code == 400 and missing.json()["error"]["code"] == "not_importable"
        assert owner.get("/grants/0x1234").status_code == 400
        assert owner.get("/grants/0x" + "ab" * 32).status_code == 404
    anonymous = httpx.get(f"{running.nodes['telecom'].url}/api/v1/datasets")
    assert anonymous.status_code == 401
    unauth = httpx.post(f"{running.nodes['telecom'].url}/api/v1/tasks", json={})
    assert unauth.status_code == 401 and unauth.json()["error"]["code"] == "unauthorized"
    frames = f"{running.nodes['telecom'].url}/api/v1/peer/frames"
    unsigned = httpx.post(frames, content=STREAM_LENGTH.pack(7) + b"garbage")
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "unauthorized"
    garbage = post_frames(running, "bank-a", "telecom", STREAM_LENGTH.pack(7) + b"garbage")
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "malformed_frame"
    cut = post_frames(running, "bank-a", "telecom", STREAM_LENGTH.pack(70) + bytes(20))
    assert cut.status_code == 400 and "ends inside a frame" in cut.json()["error"]["message"]


def test_oversized_bodies_are_refused(running: Running) -> None:
    huge = b"x" * (9 << 20)
    assert post_frames(running, "bank-a", "telecom", huge).status_code == 413
    with running.client("telecom", "operator") as client:
        response = client.post(
            "/tasks",
            content=b"{" + b" " * (2 << 20) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"


def _signed_grant_tx(
    running: Running, dev_index: int, dataset: str, grantee: int, *, function: str = "grant"
) -> str:
    ledger = running.ledger(dev_index)
    grants = ledger.grants.contract.functions
    expiry = int(running.w3.eth.get_block("latest")["timestamp"]) + 3_600
    terms = default_terms(["psi"], ["phone", "segment"])
    call = (
        grants.grant(
            bytes.fromhex(dataset[2:]),
            grantee,
            terms.chain_terms(expiry=expiry, max_uses=3).as_tuple(),
            terms.canonical_json(),
        )
        if function == "grant"
        else ledger.tasks.contract.functions.taskCount()
    )
    account = ledger.client.account
    tx = {
        "to": call.address,
        "data": call._encode_transaction_data(),
        "value": 0,
        "gas": 300_000,
        "gasPrice": running.w3.eth.gas_price,
        "nonce": running.w3.eth.get_transaction_count(account.address),
        "chainId": running.w3.eth.chain_id,
    }
    return "0x" + account.sign_transaction(tx).raw_transaction.hex()


def test_non_custodial_grant_signed_elsewhere_is_relayed(running: Running) -> None:
    dataset = running.register("bank-b")
    telecom_org = running.org_ids["telecom"]
    with running.client("bank-b", "data_owner") as owner:
        # signed by another account than the token's user
        foreign = owner.post(
            "/transactions",
            json={"rawTransaction": _signed_grant_tx(running, 1, dataset, telecom_org)},
        )
        assert foreign.status_code == 403
        # a call the relay does not carry
        other = owner.post(
            "/transactions",
            json={
                "rawTransaction": _signed_grant_tx(
                    running, 2, dataset, telecom_org, function="other"
                )
            },
        )
        assert other.status_code == 403
        assert owner.post("/transactions", json={"rawTransaction": "0xc0ffee"}).status_code == 400
        relayed = owner.post(
            "/transactions",
            json={"rawTransaction": _signed_grant_tx(running, 2, dataset, telecom_org)},
        )
        assert relayed.status_code == 201, relayed.text
        grants = [g for g in owner.get("/grants").json() if g["dataset"] == dataset]
    assert len(grants) == 1 and grants[0]["granteeOrg"] == telecom_org and grants[0]["maxUses"] == 3


def test_kkrt_psi_task_between_nodes(running: Running) -> None:
    telecom_data = running.register("telecom")
    bank_data = running.register("bank-b")
    grant(running, "bank-b", bank_data, "telecom")
    task = submit(running, telecom_data, bank_data, output="both", protocol="kkrt")
    with running.client("telecom", "operator") as client:
        final = wait_status(client, task["taskId"], {"settled", "failed"})
        assert final["status"] == "settled", final
        mine = set(client.get(f"/tasks/{task['taskId']}/result").json()["items"])
    with running.client("bank-b", "operator") as client:
        theirs = set(client.get(f"/tasks/{task['taskId']}/result").json()["items"])
    expected = running.people["telecom"] & running.people["bank-b"]
    assert mine == theirs == expected
    anchors = running.ledger(0).tasks.anchors(task["taskId"])
    assert len(anchors) == 2 and anchors[0].transcript_hash == anchors[1].transcript_hash


def test_anonymous_query_task_returns_the_holders_values(running: Running) -> None:
    holder_rows = dict(
        line.split(",")[:2]
        for line in (running.data_dir / "bank-a.csv").read_text().splitlines()[1:]
    )
    present = sorted(holder_rows)[:3]
    keys_file = running.import_dir("telecom") / "telecom-queries.csv"
    keys_file.write_text("phone\n" + "\n".join([*present, "+0000000001", "+0000000002"]) + "\n")
    with running.client("telecom", "data_owner") as owner:
        queries = owner.post(
            "/datasets",
            json={"path": str(keys_file), "name": "queries", "level": 3, "unitPrice": 0},
        ).json()["datasetId"]
    bank_data = running.register("bank-a")
    grant(running, "bank-a", bank_data, "telecom", kinds=["pir"])
    for protocol in ("simplepir", "bucket"):
        body = {
            "kind": "pir",
            "protocol": protocol,
            "inputs": [
                {"dataset": queries, "column": "phone"},
                {"dataset": bank_data, "column": "phone", "valueColumn": "segment"},
            ],
            "feeWei": FEE,
        }
        with running.client("telecom", "operator") as client:
            response = client.post("/tasks", json=body)
            assert response.status_code == 201, response.text
            task_id = response.json()["taskId"]
            final = wait_status(client, task_id, {"settled", "failed"})
            assert final["status"] == "settled", final
            items = client.get(f"/tasks/{task_id}/result").json()["items"]
        answers = dict(json.loads(item) for item in items)
        assert answers == {
            **{phone: holder_rows[phone] for phone in present},
            "+0000000001": None,
            "+0000000002": None,
        }
    with running.client("telecom", "operator") as client:  # a PSI grant does not cover PIR
        psi_only = running.register("bank-b")
        grant(running, "bank-b", psi_only, "telecom")
        body["inputs"][1]["dataset"] = psi_only  # type: ignore[index]
        waiting = client.post("/tasks", json=body).json()
        assert waiting["status"] == "submitted"  # approval needed instead


def test_three_party_set_operations_and_difference_run_as_tasks(running: Running) -> None:
    telecom = running.register("telecom")
    bank_a, bank_b = running.register("bank-a"), running.register("bank-b")
    # the union hands the requester every key: the owners grant it by name (terms), beside PSI
    terms = {
        "protocols": ["intersection3", "union3", "difference"],
        "columns": {"phone": ["join"]},
    }
    grant(running, "bank-a", bank_a, "telecom", terms=terms)
    grant(running, "bank-b", bank_b, "telecom", terms=terms)
    people = running.people
    expected = {
        "intersection3": people["telecom"] & people["bank-a"] & people["bank-b"],
        "union3": people["telecom"] | people["bank-a"] | people["bank-b"],
        "difference": people["telecom"] - people["bank-a"],
    }
    for protocol, want in expected.items():
        inputs = [{"dataset": telecom, "column": "phone"}, {"dataset": bank_a, "column": "phone"}]
        if protocol != "difference":
            inputs.append({"dataset": bank_b, "column": "phone"})
        with running.client("telecom", "operator") as client:
            response = client.post(
                "/tasks", json={"protocol": protocol, "inputs": inputs, "feeWei": FEE}
            )
            assert response.status_code == 201, response.text
            task_id = response.json()["taskId"]
            final = wait_status(client, task_id, {"settled", "failed"})
            assert final["status"] == "settled", (protocol, final)
            got = set(client.get(f"/tasks/{task_id}/result").json()["items"])
        assert got == want, protocol
        assert len(running.ledger(0).tasks.anchors(task_id)) == len(inputs)
    with running.client("telecom", "operator") as client:  # three inputs for a two-party protocol
        three = [
            {"dataset": telecom, "column": "phone"},
            {"dataset": bank_a, "column": "phone"},
            {"dataset": bank_b, "column": "phone"},
        ]
        refused = client.post("/tasks", json={"inputs": three, "protocol": "kkrt"})
        assert refused.status_code == 400 and "takes 2 inputs" in refused.json()["error"]["message"]


def test_anonymous_membership_query_as_a_task(running: Running) -> None:
    bank_data = running.register("bank-a")
    grant(running, "bank-a", bank_data, "telecom", maxUses=5)
    present = sorted(running.people["bank-a"])[0]
    for key, member in ((present, True), ("+0000000009", False)):
        query = running.import_dir("telecom") / f"member-{secrets.token_hex(3)}.csv"
        query.write_text(f"phone\n{key}\n")
        with running.client("telecom", "data_owner") as owner:
            body = {"path": str(query), "name": "member-query", "level": 4, "unitPrice": 0}
            query_id = owner.post("/datasets", json=body).json()["datasetId"]
        task = submit(running, query_id, bank_data, protocol="membership")
        with running.client("telecom", "operator") as client:
            final = wait_status(client, task["taskId"], {"settled", "failed"})
            assert final["status"] == "settled", final
            (item,) = client.get(f"/tasks/{task['taskId']}/result").json()["items"]
        assert json.loads(item) == [key, member]
