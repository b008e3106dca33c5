"""Vertical LR with differential privacy between node processes (issue 18, item 5): the telecom's
grant bounds the privacy budget a training on its columns may spend, so bank-b's task without
``dp`` (or spending more) is refused; with ``dp`` it settles, and every party's result -- the
file whose digest each anchored -- records the budget that dp-accounting gives."""

from __future__ import annotations

import hashlib
import json
import secrets

import numpy as np

from privledger.node import results
from privledger.node.worker import digest_of_hash
from privledger.protocols.fl.dp import epsilon

from .conftest import Running
from .test_vertical_model import _register, _write
from .test_walking_path import FEE, grant, wait_status

FEATURES = ["f0", "f1", "f2"]
MAX_EPSILON = 8.0
DP = {"noise_multiplier": 4.0, "clip_norm": 2.0, "delta": 1e-5}
ROUNDS = 20


def vertical_data(
    running: Running, rows: int, features: list[str], rng: np.random.Generator
) -> tuple[list[str], str, str]:
    """Fresh ids with a label at bank-b and ``features`` columns at the telecom (a noisy linear
    model of them): the ids, the label dataset and the columns dataset."""
    tag = secrets.token_hex(3)
    x = rng.normal(size=(rows, len(features)))
    y = (x @ rng.normal(size=len(features)) + rng.normal(size=rows) > 0).astype(int)
    ids = [f"+4478{tag}{i:04d}" for i in range(rows)]
    data = running.data_dir
    labelled = [[k, str(v)] for k, v in zip(ids, y, strict=True)]
    labels = _register(running, "bank-b", _write(data / f"y-{tag}.csv", ["id", "y"], labelled), 0)
    columns = [[k, *(repr(float(v)) for v in row)] for k, row in zip(ids, x, strict=True)]
    path = _write(data / f"x-{tag}.csv", ["id", *features], columns)
    return ids, labels, _register(running, "telecom", path, 0)


def training_body(
    running: Running, labels: str, columns: str, features: list[str], rounds: int
) -> dict[str, object]:
    """bank-b's vertical-lr task on :func:`vertical_data`'s datasets, the regulator dealing."""
    return {
        "kind": "fl",
        "protocol": "vertical-lr",
        "inputs": [
            {"dataset": labels, "column": "id", "valueColumn": "y"},
            {"dataset": columns, "column": "id", "features": features},
        ],
        "dealer": running.org_ids["regulator"],
        "rounds": rounds,
        "feeWei": FEE,
    }


def test_a_grant_bounding_epsilon_refuses_training_without_dp_and_records_the_budget(
    running: Running,
) -> None:
    _, labels, subscribers = vertical_data(running, 150, FEATURES, np.random.default_rng(5))
    terms = {
        "protocols": ["vertical-lr"],
        "columns": {"id": ["join"], **{f: ["aggregate"] for f in FEATURES}},
        "maxEpsilon": MAX_EPSILON,
    }
    grant(running, "telecom", subscribers, "bank-b", kinds=[], terms=terms)
    body = training_body(running, labels, subscribers, FEATURES, ROUNDS)
    with running.client("bank-b", "operator") as client:
        for dp in (None, {**DP, "noise_multiplier": 0.5}):  # no DP; DP spending more than 8
            refused = client.post("/tasks", json={**body, "dp": dp})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "terms_violation"
            assert "max_epsilon" in refused.json()["error"]["message"]
        response = client.post("/tasks", json={**body, "dp": DP})
        assert response.status_code == 201, response.text
        task_id = response.json()["taskId"]
        final = wait_status(client, task_id, {"settled", "failed"}, 300)
    assert final["status"] == "settled", final

    spent = epsilon(DP["noise_multiplier"], ROUNDS, DP["delta"])
    assert spent <= MAX_EPSILON
    anchored = {
        e["args"]["org"]: e["args"]["resultDigest"]
        for e in final["timeline"]
        if e["event"] == "ResultAnchored"
    }
    for org in ("bank-b", "telecom"):
        with running.client(org, "operator") as client:
            download = client.get(f"/tasks/{task_id}/result/file")
        assert download.status_code == 200, download.text
        (part,) = (json.loads(item) for item in results.parse(download.content))
        budget = part["dp"]
        assert budget["epsilon"] == spent and budget["trainings"] == 1
        assert budget["epochs"] == ROUNDS and budget["clip_norm"] == DP["clip_norm"]
        assert budget["label_epsilon"] < spent
        salt = bytes.fromhex(download.headers["X-Result-Salt"][2:])
        own = running.org_ids[org]
        digest = digest_of_hash(task_id, own, salt, hashlib.sha256(download.content).digest())
        assert anchored[own] == "0x" + digest.hex()
