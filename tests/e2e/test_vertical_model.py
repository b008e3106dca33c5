"""A vertical model as an asset and joint prediction as a task (issue 18, items 1 and 2), between
node processes: bank-b holds the labels only, the telecom its subscribers' columns; the model
they train stays secret-shared, bank-b registers it, and bank-a, holding neither part, gets the
ids of its batch that the model flags -- the same list as the plaintext model's -- while the
fee is split to the wei between the model (and upstream its training data) and the telecom's
current data, and the call is logged and anchored at the model's owner."""

from __future__ import annotations

import csv
import json
import secrets
import time
from pathlib import Path

import numpy as np

from privledger.evm.merkle import ProofDocument
from privledger.protocols.mpc.ring import decode_fixed, reconstruct
from privledger.sdk import NodeClient

from .conftest import Running
from .test_walking_path import FEE, fee_allocations, grant, wait_status

FEATURES = ["f0", "f1", "f2", "f3"]
TRUE_WEIGHTS = np.array([2.0, -1.5, 1.0, 0.0])
MODEL_PRICE, DATA_PRICE, UPSTREAM_BPS = 3 * 10**12, 10**12, 3_000
BATCH = 100


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _register(running: Running, org: str, path: Path, price: int) -> str:
    node = running.nodes[org]
    with NodeClient(node.url, node.tokens["data_owner"]) as owner:
        return owner.register_file(path, path.stem, level=2, unit_price=price).dataset_id


def _run(running: Running, org: str, body: dict[str, object], timeout_s: float) -> dict:  # type: ignore[type-arg]
    with running.client(org, "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        final = wait_status(client, response.json()["taskId"], {"settled", "failed"}, timeout_s)
    assert final["status"] == "settled", final
    return final


def _result(running: Running, org: str, task_id: int) -> list[str]:
    with running.client(org, "operator") as client:
        return list(client.get(f"/tasks/{task_id}/result").json()["items"])


def _terms(columns: dict[str, list[str]]) -> dict[str, object]:
    return {"protocols": ["vertical-predict"], "columns": columns, "outputs": ["ids"]}


def test_a_registered_vertical_model_flags_a_batch_as_the_plaintext_model_does(
    running: Running,
) -> None:
    rng = np.random.default_rng(18)
    tag = secrets.token_hex(3)
    n = 300
    x = rng.normal(size=(n, 4))
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ TRUE_WEIGHTS - 0.5)))).astype(int)
    ids = [f"+4479{tag}{i:04d}" for i in range(n)]
    data = running.data_dir
    labels = _write(
        data / f"vm-labels-{tag}.csv",
        ["id", "label"],
        [[k, str(v)] for k, v in zip(ids, y, strict=True)],
    )
    columns = [[k, *(repr(float(v)) for v in row)] for k, row in zip(ids, x, strict=True)]
    subscribers = _write(data / f"vm-subs-{tag}.csv", ["id", *FEATURES], columns)
    label_data = _register(running, "bank-b", labels, DATA_PRICE)
    telecom_data = _register(running, "telecom", subscribers, DATA_PRICE)
    grant(running, "telecom", telecom_data, "bank-b", kinds=["fl"])
    training = {
        "kind": "fl",
        "protocol": "vertical-lr",
        "inputs": [
            {"dataset": label_data, "column": "id", "valueColumn": "label"},
            {"dataset": telecom_data, "column": "id", "features": FEATURES},
        ],
        "dealer": running.org_ids["regulator"],
        "rounds": 60,
        "feeWei": FEE,
    }
    train_id = _run(running, "bank-b", training, 300)["taskId"]
    parts = [json.loads(_result(running, org, train_id)[0]) for org in ("bank-b", "telecom")]
    assert all("weights" not in part and "intercept" not in part for part in parts)
    assert parts[0]["model_hash"] == parts[1]["model_hash"]

    # item 1: bank-b, the label holder, registers the shared model
    with running.client("bank-b", "data_owner") as owner:
        name = f"fraud-vlr-{tag}"
        body = {
            "taskId": train_id,
            "name": name,
            "unitPrice": MODEL_PRICE,
            "upstreamBps": UPSTREAM_BPS,
        }
        response = owner.post("/models", json=body)
        assert response.status_code == 201, response.text
        registered = response.json()
    assert registered["modelHash"] == parts[0]["model_hash"]
    assert sorted(registered["parents"]) == sorted([label_data, telecom_data])
    assert registered["level"] == 2 and registered["protocol"] == "vertical-lr"
    with running.client("telecom", "data_owner") as owner:  # only the label holder registers
        refused = owner.post("/models", json={**body, "name": f"{name}-t"})
        assert refused.status_code == 409, refused.text
    model_id = registered["modelId"]

    # item 2: bank-a brings a batch; the telecom scores its current subscribers' columns
    current = x + rng.normal(scale=0.1, size=x.shape)
    current_path = _write(
        data / f"vm-current-{tag}.csv",
        ["id", *FEATURES],
        [[k, *(repr(float(v)) for v in row)] for k, row in zip(ids, current, strict=True)],
    )
    current_data = _register(running, "telecom", current_path, DATA_PRICE)
    batch_ids = ids[:BATCH] + [f"+4400{tag}{i:04d}" for i in range(20)]  # 20 unknown numbers
    batch = _register(
        running, "bank-a", _write(data / f"vm-batch-{tag}.csv", ["id"], [[k] for k in batch_ids]), 0
    )
    grant(running, "bank-b", model_id, "bank-a", kinds=[], terms=_terms({"model": ["join"]}))
    granted = {"id": ["join"], **{f: ["aggregate"] for f in FEATURES}}
    grant(running, "telecom", current_data, "bank-a", kinds=[], terms=_terms(granted))
    predict = {
        "kind": "fl",
        "protocol": "vertical-predict",
        "inputs": [
            {"dataset": model_id, "column": "model"},
            {"dataset": current_data, "column": "id", "features": FEATURES},
            {"dataset": batch, "column": "id"},
        ],
        "dealer": running.org_ids["regulator"],
        "output": "ids",
        "threshold": 0.5,
        "modelTask": train_id,
        "feeWei": FEE,
    }
    with running.client("bank-a", "operator") as client:  # scores are not in the terms
        refused = client.post("/tasks", json={**predict, "output": "scores", "threshold": None})
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "terms_violation"
    done = _run(running, "bank-a", predict, 180)
    flagged = _result(running, "bank-a", done["taskId"])

    # the plaintext model (reconstructed from both parties' shares) flags the same ids
    shares = [np.frombuffer(bytes.fromhex(p["shares"]), "<u8").astype(np.uint64) for p in parts]
    weights = decode_fixed(reconstruct(shares), parts[0]["frac_bits"])
    standard = (current[:BATCH] - np.array(parts[1]["mean"])) / np.array(parts[1]["scale"])
    expected = [ids[i] for i in np.flatnonzero(standard @ weights[1:] + weights[0] >= 0)]
    assert 10 < len(expected) < BATCH - 10
    assert sorted(flagged) == sorted(expected)

    # the fee: the model's rows less its upstream share, which its two parents' owners split
    # equally, and the telecom's current rows, to the wei
    model_value, upstream = BATCH * MODEL_PRICE, BATCH * MODEL_PRICE * UPSTREAM_BPS // 10_000
    earned = {
        running.org_ids["bank-b"]: model_value - upstream + upstream // 2,
        running.org_ids["telecom"]: BATCH * DATA_PRICE + upstream // 2,
    }
    total = sum(earned.values())
    assert fee_allocations(done) == {org: FEE * value // total for org, value in earned.items()}

    # a call naming another training task is refused by the model's owner, and logged
    with running.client("bank-a", "operator") as client:
        response = client.post("/tasks", json={**predict, "modelTask": train_id + 10_000})
        assert response.status_code == 201, response.text
        bad = response.json()["taskId"]
        assert wait_status(client, bad, {"settled", "failed"}, 120)["status"] == "failed"

    # the calls are logged at the model's owner and anchored: a proof checks against the chain
    with running.client("bank-b", "data_owner") as owner:
        log = owner.get(f"/models/{name}/calls").json()
        outcomes = {e["taskId"]: e["outcome"] for e in log}
        assert outcomes[done["taskId"]] == f"ran: {BATCH} rows, output ids"
        assert outcomes[bad] == f"refused: task {train_id + 10_000} left no model part here"
        assert len(log) == 2
        deadline = time.monotonic() + 60
        path = f"/models/{name}/calls/{done['taskId']}/proof"
        while (proof := owner.get(path)).status_code == 409:
            assert time.monotonic() < deadline, "the call was never anchored"
            time.sleep(1)
        assert proof.status_code == 200, proof.text
    document = ProofDocument.from_json(proof.json())
    assert document.verify_offline()
    assert running.ledger(0).anchors.verify(document.batch_id, document.digest, document.proof)
