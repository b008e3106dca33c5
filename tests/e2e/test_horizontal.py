"""Horizontal FL as a ledger task between three node processes, then model governance: the model
is registered on chain as a derived asset, used for prediction under an FL grant, and every
prediction call is logged and provable against the chain."""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from privledger.evm.merkle import ProofDocument
from privledger.protocols.fl.federation import FederatedModel

from .conftest import Running
from .test_federated import register
from .test_walking_path import FEE, fee_allocations, grant, wait_status

CLIENTS = ("bank-a", "bank-b", "telecom")  # bank-a aggregates and trains its own rows too
FEATURES = [f"f{i}" for i in range(30)]


def write_rows(path: Path, ids: list[str], x: np.ndarray, y: np.ndarray | None) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *FEATURES, *(["label"] if y is not None else [])])
        for index, key in enumerate(ids):
            label = [str(int(y[index]))] if y is not None else []
            writer.writerow([key, *(repr(float(v)) for v in x[index]), *label])
    return path


def horizontal_task(
    running: Running,
    clients: tuple[str, ...],
    shards: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    *,
    rounds: int,
) -> dict[str, Any]:
    """Each client's shard of (x, y) registered at its node and granted to the first client,
    the aggregator; the body of a horizontal-lr task over them."""
    tag = secrets.token_hex(3)
    datasets = {}
    for org, rows in zip(clients, shards, strict=True):
        path = write_rows(
            running.data_dir / f"hfl-{org}-{tag}.csv",
            [f"{org}-{i}" for i in rows],
            x[rows],
            y[rows],
        )
        datasets[org] = register(running, org, path)
    for org in clients[1:]:
        grant(running, org, datasets[org], clients[0], kinds=["fl"])
    inputs = [
        {"dataset": datasets[org], "column": "id", "features": FEATURES, "valueColumn": "label"}
        for org in clients
    ]
    return {"kind": "fl", "protocol": "horizontal-lr", "rounds": rounds, "inputs": inputs}


def test_horizontal_fl_task_then_governed_prediction(running: Running) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    shards = np.array_split(np.random.default_rng(0).permutation(y_train.size), 3)
    tag = secrets.token_hex(3)
    body = {**horizontal_task(running, CLIENTS, shards, x_train, y_train, rounds=40), "feeWei": FEE}
    datasets = {org: item["dataset"] for org, item in zip(CLIENTS, body["inputs"], strict=True)}
    with running.client("bank-a", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"}, timeout_s=300)
        assert final["status"] == "settled", final
        (item,) = client.get(f"/tasks/{task_id}/result").json()["items"]
    result = json.loads(item)
    model = FederatedModel.from_json(result)
    assert result["clients"] == sorted(running.org_ids[org] for org in CLIENTS)
    assert model.rows == y_train.size
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    baseline = LogisticRegression(max_iter=10_000).fit((x_train - mean) / scale, y_train)
    pooled = roc_auc_score(y_test, baseline.predict_proba((x_test - mean) / scale)[:, 1])
    assert abs(roc_auc_score(y_test, model.predict(x_test)) - pooled) <= 0.005
    # clients are paid by training rows (equal prices); the requester's own rows earn nothing
    paid = fee_allocations(final)
    b, t = running.org_ids["bank-b"], running.org_ids["telecom"]
    assert sum(paid.values()) == FEE and set(paid) == {b, t}
    share = shards[1].size / (shards[1].size + shards[2].size)
    assert abs(paid[b] / FEE - share) <= 1e-4  # basis points

    # governance: the model becomes an asset on chain whose parents are the training datasets
    with running.client("bank-a", "data_owner") as owner:
        refused = owner.post("/models", json={"taskId": task_id + 10_000, "name": "nope"})
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_a_model"
        name = f"fraud-lr-{tag}"
        response = owner.post(
            "/models",
            json={"taskId": task_id, "name": name, "unitPrice": 10**12, "upstreamBps": 3_000},
        )
        assert response.status_code == 201, response.text
        registered = response.json()
        again = owner.post("/models", json={"taskId": task_id, "name": f"{name}-2"})
        assert again.status_code == 409
    canonical = json.dumps(result, sort_keys=True, separators=(",", ":")).encode()
    assert registered["modelHash"] == "0x" + hashlib.sha256(canonical).hexdigest()
    assert sorted(registered["parents"]) == sorted(datasets.values())
    model_id = registered["modelId"]

    # prediction needs an FL grant on the model: the telecom has one, bank-b has none
    grant(running, "bank-a", model_id, "telecom", kinds=["fl"])
    query_path = write_rows(
        running.data_dir / f"hfl-query-{tag}.csv", [f"q{i}" for i in range(20)], x_test[:20], None
    )
    query = register(running, "telecom", query_path)
    predict = {
        "kind": "fl",
        "protocol": "predict",
        "inputs": [
            {"dataset": query, "column": "id", "features": FEATURES},
            {"dataset": model_id, "column": "model"},
        ],
        "feeWei": FEE,
    }
    with running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=predict)
        assert response.status_code == 201, response.text
        predict_id = response.json()["taskId"]
        done = wait_status(client, predict_id, {"settled", "failed"}, timeout_s=120)
        assert done["status"] == "settled", done
        scored = [json.loads(i) for i in client.get(f"/tasks/{predict_id}/result").json()["items"]]
    scores = dict(scored)
    expected = model.predict(x_test[:20])
    assert np.allclose([scores[f"q{i}"] for i in range(20)], expected, atol=1e-12)
    paid = fee_allocations(done)
    assert sum(paid.values()) == FEE and paid[running.org_ids["bank-a"]] > 0
    assert paid.get(b, 0) > 0  # a training data owner shares the prediction fee upstream

    bank_b_query = register(running, "bank-b", query_path)
    stranger = {
        **predict,
        "inputs": [{**predict["inputs"][0], "dataset": bank_b_query}, predict["inputs"][1]],
    }  # type: ignore[dict-item]
    with running.client("bank-b", "operator") as client:
        response = client.post("/tasks", json=stranger)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "submitted"  # waits for the owner's approval

    # the call is logged by the model's holder and anchored: its proof checks against the chain
    with running.client("bank-a", "data_owner") as owner:
        log = owner.get(f"/models/{name}/calls").json()
        assert [(e["taskId"], e["outcome"]) for e in log] == [(predict_id, "ran: 20 rows")]
        deadline = time.monotonic() + 60
        while (proof := owner.get(f"/models/{name}/calls/{predict_id}/proof")).status_code == 409:
            assert time.monotonic() < deadline, "the call was never anchored"
            time.sleep(1)
        assert proof.status_code == 200, proof.text
    document = ProofDocument.from_json(proof.json())
    assert document.verify_offline()
    assert running.ledger(0).anchors.verify(document.batch_id, document.digest, document.proof)
