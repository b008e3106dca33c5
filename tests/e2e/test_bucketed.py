"""Bucketed KKRT-PSI as a ledger task between node processes: both sides stream their files into
buckets, the intersection is a file whose SHA-256 is what the anchored digest commits to."""

from __future__ import annotations

import csv
import hashlib
import json

from privledger.evm.accounts import dev_account
from privledger.node import results
from privledger.node.worker import digest_of_hash

from .conftest import Running
from .test_explorer import REGULATOR, explorer, login
from .test_walking_path import FEE, fee_allocations, grant, wait_status


def test_a_bucketed_psi_task_streams_and_anchors_its_output_file(running: Running) -> None:
    telecom = running.register("telecom")
    bank = running.register("bank-a", price=10**9)
    grant(running, "bank-a", bank, "telecom")
    body = {
        "protocol": "kkrt",
        "buckets": 4,
        "inputs": [{"dataset": telecom, "column": "phone"}, {"dataset": bank, "column": "phone"}],
        "feeWei": FEE,
    }
    with running.client("telecom", "operator") as client:
        assert client.post("/tasks", json={**body, "protocol": "ecdh"}).status_code == 400
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"})
        assert final["status"] == "settled", final
        result = client.get(f"/tasks/{task_id}/result").json()
        download = client.get(f"/tasks/{task_id}/result/file")
    expected = running.people["telecom"] & running.people["bank-a"]
    assert set(result["items"]) == expected and len(result["items"]) == len(expected)
    assert download.status_code == 200
    assert results.parse(download.content) == result["items"]
    salt = bytes.fromhex(download.headers["X-Result-Salt"][2:])
    own = running.org_ids["telecom"]
    digest = digest_of_hash(task_id, own, salt, hashlib.sha256(download.content).digest())
    anchored = {
        e["args"]["org"]: e["args"]["resultDigest"]
        for e in final["timeline"]
        if e["event"] == "ResultAnchored"
    }
    assert anchored[own] == "0x" + digest.hex() == result["resultDigest"]
    assert fee_allocations(final) == {running.org_ids["bank-a"]: FEE}


# Items a CSV field can hold that a line-based or naive reader breaks: line breaks, the Unicode
# line and record separators str.splitlines() also splits on, quotes, backslashes, blanks
ODD_ITEMS = [
    "line\u2028separator",
    "paragraph\u2029separator",
    "record\x1eseparator",
    "group\x1dseparator",
    "file\x1cseparator",
    "next\x85line",
    "vertical\x0btab",
    "form\x0cfeed",
    "with\nnewline",
    "carriage\rreturn",
    "crlf\r\nend",
    'a "quoted" item',
    "back\\slash",
    "comma, inside",
    " blanks around ",
    "",
    "é ünï 中文 🙂",
]


def _odd_dataset(running: Running, org: str, items: list[str]) -> str:
    name = f"{org}-odd.csv"
    with (running.import_dir(org) / name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item"])
        writer.writerows([item] for item in items)
    body = {"path": name, "name": f"{org}-odd", "level": 2, "unitPrice": 10**12}
    with running.client(org, "data_owner") as owner:
        response = owner.post("/datasets", json=body)
        assert response.status_code == 201, response.text
        dataset_id: str = response.json()["datasetId"]
        return dataset_id


def test_any_csv_item_round_trips_through_psi_results_and_verifies(running: Running) -> None:
    """Every two-party PSI, bucketed or not: GET /result gives back exactly the common items,
    GET /result/file is the same items in the documented format, and the explorer verifies
    both the file and the result object against the anchored digest."""
    telecom = _odd_dataset(running, "telecom", [*ODD_ITEMS, "telecom only", "+1"])
    bank = _odd_dataset(running, "bank-a", ["bank only", *reversed(ODD_ITEMS), "+2"])
    grant(running, "bank-a", bank, "telecom")
    inputs = [{"dataset": telecom, "column": "item"}, {"dataset": bank, "column": "item"}]
    bodies = {
        "ecdh": {"protocol": "ecdh"},
        "kkrt": {"protocol": "kkrt"},
        "bucketed": {"protocol": "kkrt", "buckets": 3},
    }
    own = running.org_ids["telecom"]
    with running.client("telecom", "operator") as client, explorer(running) as auditor:
        assert login(auditor, dev_account(REGULATOR)).status_code == 200
        submitted = {}
        for name, options in bodies.items():
            response = client.post("/tasks", json={**options, "inputs": inputs, "feeWei": FEE})
            assert response.status_code == 201, response.text
            submitted[name] = response.json()["taskId"]
        answers = {}
        for name, task_id in submitted.items():
            final = wait_status(client, task_id, {"settled", "failed"})
            assert final["status"] == "settled", (name, final)
            answers[name] = client.get(f"/tasks/{task_id}/result").json()
        assert {name: sorted(answer["items"]) for name, answer in answers.items()} == {
            name: sorted(ODD_ITEMS) for name in bodies
        }
        for name, result in answers.items():
            download = client.get(f"/tasks/{submitted[name]}/result/file")
            assert download.headers["content-type"] == "application/jsonl", name
            lines = download.content.split(b"\n")
            assert lines.pop() == b"" and [json.loads(line) for line in lines] == result["items"]
            file = ("result.jsonl", download.content, "application/jsonl")
            whole = ("result.json", json.dumps(result).encode(), "application/json")
            for upload, salt in ((file, result["salt"]), (whole, "")):
                verdict = auditor.post(
                    "/explorer/api/verify",
                    data={"task_id": str(submitted[name]), "org_id": str(own), "salt": salt},
                    files={"result_file": upload},
                )
                assert verdict.status_code == 200, (name, verdict.text)
                assert verdict.json()["verified"] is True, (name, upload[0], verdict.json())
                assert verdict.json()["anchored_digest"] == result["resultDigest"]
                assert verdict.json()["item_count"] == len(ODD_ITEMS)
            # a file too large to upload: its SHA-256 instead
            form = {"task_id": str(submitted[name]), "org_id": str(own), "salt": result["salt"]}
            sha256 = hashlib.sha256(download.content).hexdigest()
            by_hash = auditor.post("/explorer/api/verify", data={**form, "result_sha256": sha256})
            assert by_hash.status_code == 200 and by_hash.json()["verified"] is True, name
            assert by_hash.json()["item_count"] is None
            other = auditor.post("/explorer/api/verify", data={**form, "result_sha256": "11" * 32})
            assert other.json()["verified"] is False, name
