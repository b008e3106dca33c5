"""Vertical federated learning as a ledger task: a telecom holding half of the columns and the
labels, a bank holding the other half; rows aligned by PSI inside the task, logistic regression
trained by secret sharing between the two node processes with the regulator's node dealing. By
default the model stays shared (each party keeps shares of every weight); the three-party test
releases each party's weights, which the data owners' terms must allow."""

from __future__ import annotations

import csv
import json
import secrets
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from privledger.protocols.mpc.ring import decode_fixed, reconstruct
from privledger.sdk import NodeClient

from .conftest import Running
from .test_walking_path import FEE, fee_allocations, grant, wait_status

SPLIT = 15  # the telecom holds columns 0..14 and the label, the bank 15..29


def write(path: Path, ids: list[str], columns: np.ndarray, labels: np.ndarray | None) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["id"] + [f"f{i}" for i in range(columns.shape[1])]
        writer.writerow(header + (["label"] if labels is not None else []))
        for index, key in enumerate(ids):
            row = [key, *(repr(float(v)) for v in columns[index])]
            writer.writerow(row + ([str(int(labels[index]))] if labels is not None else []))


def register(running: Running, org: str, path: Path) -> str:
    """Upload ``org``'s file to its node, as from the data owner's own machine."""
    node = running.nodes[org]
    with NodeClient(node.url, node.tokens["data_owner"]) as owner:
        return owner.register_file(path, path.stem, level=2, unit_price=10**9).dataset_id


def test_vertical_logistic_regression_between_nodes_matches_pooled_sklearn(
    running: Running,
) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    ids = [f"p{i}" for i in range(len(y_train))]
    # each side also holds rows the other does not: alignment must drop them
    extra_t = [f"t{i}" for i in range(20)]
    extra_b = [f"b{i}" for i in range(15)]
    noise = np.random.default_rng(1)
    telecom_path = running.data_dir / f"fraud-telecom-{secrets.token_hex(3)}.csv"
    bank_path = running.data_dir / f"fraud-bank-{secrets.token_hex(3)}.csv"
    write(
        telecom_path,
        ids + extra_t,
        np.vstack([x_train[:, :SPLIT], noise.normal(size=(20, SPLIT))]),
        np.concatenate([y_train, noise.integers(0, 2, 20)]),
    )
    write(
        bank_path,
        extra_b + ids,
        np.vstack([noise.normal(size=(15, 30 - SPLIT)), x_train[:, SPLIT:]]),
        None,
    )
    telecom_data, bank_data = (
        register(running, "telecom", telecom_path),
        register(running, "bank-a", bank_path),
    )
    grant(running, "bank-a", bank_data, "telecom", kinds=["fl"])
    features_t = [f"f{i}" for i in range(SPLIT)]
    features_b = [f"f{i}" for i in range(30 - SPLIT)]
    body = {
        "kind": "fl",
        "protocol": "vertical-lr",
        "inputs": [
            {
                "dataset": telecom_data,
                "column": "id",
                "features": features_t,
                "valueColumn": "label",
            },
            {"dataset": bank_data, "column": "id", "features": features_b},
        ],
        "dealer": running.org_ids["regulator"],
        "feeWei": FEE,
    }
    with running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"}, timeout_s=300)
        assert final["status"] == "settled", final
        (telecom_part,) = client.get(f"/tasks/{task_id}/result").json()["items"]
    with running.client("bank-a", "operator") as client:
        (bank_part,) = client.get(f"/tasks/{task_id}/result").json()["items"]
    parts = [json.loads(telecom_part), json.loads(bank_part)]
    assert parts[0]["aligned"] == parts[1]["aligned"] == len(ids)
    assert not any("weights" in part for part in parts)  # the model stays shared
    # the test holds both parties' shares: the telecom's block (15 weights, the intercept),
    # then the bank's
    shares = [np.frombuffer(bytes.fromhex(p["shares"]), "<u8").astype(np.uint64) for p in parts]
    weights = decode_fixed(reconstruct(shares), parts[0]["frac_bits"])

    columns = [x_test[:, :SPLIT], x_test[:, SPLIT:]]
    standard = [
        (cols - np.array(p["mean"])) / np.array(p["scale"])
        for cols, p in zip(columns, parts, strict=True)
    ]
    scores = standard[0] @ weights[:SPLIT] + weights[SPLIT] + standard[1] @ weights[SPLIT + 1 :]
    auc = roc_auc_score(y_test, scores)
    scaler = StandardScaler().fit(x_train)
    baseline = LogisticRegression().fit(scaler.transform(x_train), y_train)
    baseline_auc = roc_auc_score(y_test, baseline.decision_function(scaler.transform(x_test)))
    assert abs(auc - baseline_auc) <= 0.005, (auc, baseline_auc)

    # contributions measured on the held-out fifth decide the settlement
    telecom_org, bank_org = running.org_ids["telecom"], running.org_ids["bank-a"]
    shapley = {int(org): value for org, value in parts[0]["contributions"].items()}
    assert set(shapley) == {telecom_org, bank_org}
    assert shapley[bank_org] > 0  # the bank's columns improve the model
    allocated = fee_allocations(final)
    assert sum(allocated.values()) == FEE and allocated[bank_org] > 0


def test_three_party_vertical_lr_pays_each_by_its_shapley_value(running: Running) -> None:
    """The telecom holds columns 0..9 and the label, bank-a 10..19, bank-b 20..29 (pure noise
    in place of their real values would earn ~0, see tests/protocols/fl/test_contribution.py)."""
    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    ids = [f"p{i}" for i in range(len(y_train))]
    tag = secrets.token_hex(3)
    owners = {"telecom": slice(0, 10), "bank-a": slice(10, 20), "bank-b": slice(20, 30)}
    datasets = {}
    for org, columns in owners.items():
        extra = [f"{org}-x{i}" for i in range(7)]  # rows only this party holds
        path = running.data_dir / f"v3-{org}-{tag}.csv"
        block = np.vstack([x_train[:, columns], np.random.default_rng(2).normal(size=(7, 10))])
        labels = np.concatenate([y_train, np.zeros(7)]) if org == "telecom" else None
        write(path, ids + extra, block, labels)
        datasets[org] = register(running, org, path)
    for org in ("bank-a", "bank-b"):  # terms that release each party's weights (a label leak)
        terms = {
            "protocols": ["vertical-lr"],
            "columns": dict.fromkeys(["id", *(f"f{i}" for i in range(10))], ("join", "aggregate")),
            "outputs": ["requester", "weights"],
        }
        grant(running, org, datasets[org], "telecom", kinds=[], terms=terms)
    features = [f"f{i}" for i in range(10)]
    body = {
        "kind": "fl",
        "protocol": "vertical-lr",
        "inputs": [
            {
                "dataset": datasets[org],
                "column": "id",
                "features": features,
                **({"valueColumn": "label"} if org == "telecom" else {}),
            }
            for org in owners
        ],
        "dealer": running.org_ids["regulator"],
        "rounds": 60,  # gradient epochs: three secret-shared trainings run in this task
        "output": "weights",
        "feeWei": FEE,
    }
    parts = {}
    with running.client("telecom", "operator") as client:
        response = client.post("/tasks", json=body)
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"}, timeout_s=400)
        assert final["status"] == "settled", final
    for org in owners:
        with running.client(org, "operator") as client:
            (item,) = client.get(f"/tasks/{task_id}/result").json()["items"]
            parts[org] = json.loads(item)
    assert {part["aligned"] for part in parts.values()} == {len(ids)}
    scores = (
        sum(
            ((x_test[:, owners[org]] - np.array(p["mean"])) / np.array(p["scale"]))
            @ np.array(p["weights"])
            for org, p in parts.items()
        )
        + parts["telecom"]["intercept"]
    )
    scaler = StandardScaler().fit(x_train)
    baseline = LogisticRegression().fit(scaler.transform(x_train), y_train)
    baseline_auc = roc_auc_score(y_test, baseline.decision_function(scaler.transform(x_test)))
    assert roc_auc_score(y_test, scores) > baseline_auc - 0.01  # 60 epochs, not to convergence
    shapley = {int(org): value for org, value in parts["telecom"]["contributions"].items()}
    assert set(shapley) == {running.org_ids[org] for org in owners}
    allocated = fee_allocations(final)
    assert sum(allocated.values()) == FEE
    assert allocated[running.org_ids["bank-a"]] > 0 and allocated[running.org_ids["bank-b"]] > 0
